"""The PostgreSQL connection drops while the servers run.

The app reaches PostgreSQL through a TCP proxy in the test process that can be
cut (every connection closed, new ones refused) and restored. While it is
cut, the token routes and protected views answer 503 ``service_unavailable``
with ``Retry-After``, never 500 - including when the outage surfaces inside
the example's own callbacks (``credentials_checker`` and ``user_loader`` use
``db.session``). Once restored, the app recovers by itself (``pool_pre_ping``)
and nothing is half-written: a refresh token presented during the outage
still works and no session ends up with two live refresh tokens.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from urllib.parse import urlsplit

import pytest

from tests.integration import servers as srv
from tests.integration.proxy import TcpProxy, through

pytestmark = [pytest.mark.integration, pytest.mark.needs_server]

LIMITS = {
    "COCART_JWT_LIMIT_LOGIN_PER_IP": "1000 per minute",
    "COCART_JWT_LIMIT_REFRESH_PER_IP": "1000 per minute",
    "COCART_JWT_LIMIT_REFRESH_PER_TOKEN": "1000 per minute",
}
SESSIONS = 8


@pytest.fixture
def proxy(postgresql_url: str) -> Iterator[TcpProxy]:
    parts = urlsplit(postgresql_url)
    with TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432) as proxy:
        yield proxy


def assert_unavailable(replies: list[srv.Reply]) -> None:
    for reply in replies:
        assert (reply.status, reply.code) == (503, "service_unavailable"), reply.describe()
        assert int(reply.headers["retry-after"]) >= 1


def test_database_connection_dropped_and_restored(
    postgresql_url: str,
    redis_url: str,
    proxy: TcpProxy,
    start_servers: Callable[..., list[srv.Server]],
) -> None:
    (server,) = start_servers(
        through(postgresql_url, proxy.port), redis_url, names=("a",), **LIMITS
    )
    port = server.port
    logins = srv.concurrently([partial(srv.login, port)] * SESSIONS)
    assert {r.status for r in logins} == {200}, [r.describe() for r in logins]
    held = logins[0].body
    current = {r.body["session_id"]: r.body["refresh_token"] for r in logins[1:]}
    assert proxy.connections > 0

    # Cut in the middle of a burst of refreshes: each one either rotated
    # (200) or answers 503, never 500.
    outcome: list[srv.Reply] = []

    def refresh_all() -> None:
        outcome.extend(srv.concurrently([partial(srv.refresh, port, t) for t in current.values()]))

    burst = threading.Thread(target=refresh_all, daemon=True)
    burst.start()
    time.sleep(0.02)
    proxy.cut()
    burst.join(timeout=60)
    assert not burst.is_alive()
    assert {r.status for r in outcome} <= {200, 503}, [r.describe() for r in outcome]
    assert_unavailable([r for r in outcome if r.status != 200])

    # While the database is unreachable.
    assert_unavailable(srv.concurrently([partial(srv.login, port)] * 4))
    assert_unavailable(srv.concurrently([partial(srv.refresh, port, held["refresh_token"])] * 4))
    assert_unavailable(
        srv.concurrently([partial(srv.call, port, "GET", "/cart", token=held["access_token"])] * 4)
    )

    proxy.restore()
    restored_at = time.monotonic()

    # The app recovers by itself: the next requests are served.
    deadline = restored_at + 20
    cart: list[srv.Reply] = []
    while time.monotonic() < deadline:
        cart = srv.concurrently(
            [partial(srv.call, port, "GET", "/cart", token=held["access_token"])] * 4
        )
        if {r.status for r in cart} == {200}:
            break
        time.sleep(0.1)
    assert {r.status for r in cart} == {200}, [r.describe() for r in cart]
    recovered_after = time.monotonic() - restored_at
    assert srv.login(port).status == 200

    # The token presented during the outage works once, and rotates.
    after = srv.refresh(port, held["refresh_token"])
    assert after.status == 200, after.describe()
    assert after.body["session_id"] == held["session_id"]
    assert srv.live_tokens(postgresql_url, held["session_id"]) == 1

    # Burst clients that got a 503 retry with the same token; those that got
    # a 200 go on with their successor.
    succeeded = {r.body["session_id"]: r.body["refresh_token"] for r in outcome if r.status == 200}
    for session_id, token in current.items():
        next_token = succeeded.get(session_id)
        if next_token is None:
            retried = srv.refresh(port, token)
            assert retried.status == 200, (session_id, retried.describe())
            next_token = retried.body["refresh_token"]
        following = srv.refresh(port, next_token)
        assert following.status == 200, (session_id, following.describe())

    stats = srv.token_stats(postgresql_url)
    assert stats.forked_sessions == []
    assert stats.sessions_without_live_token == []
    assert stats.revoked_sessions == 0
    print(
        f"\ndatabase outage: {sum(r.status == 503 for r in outcome)} of {len(outcome)} "
        f"in-flight refreshes answered 503; recovered {recovered_after:.2f} s after the restore"
    )

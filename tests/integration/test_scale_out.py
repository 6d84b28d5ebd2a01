"""Scale-out: two gunicorn servers, two workers each, one database, one Redis.

What must hold across processes and hosts, over real HTTP: rate limits are
global, a refresh token rotates exactly once whichever workers it reaches,
and a revocation made on one server is enforced by every worker of the other
within the documented bound of one second.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from functools import partial

import pytest

from tests.integration import servers as srv

pytestmark = [pytest.mark.integration, pytest.mark.needs_server]

Cluster = Callable[..., list[srv.Server]]
#: The documented bound on revocation propagation between processes.
PROPAGATION_BOUND = 1.0


def assert_no_server_errors(replies: list[srv.Reply]) -> None:
    bad = [r.describe() for r in replies if r.status == 0 or r.status >= 500]
    assert not bad, bad


def test_refresh_limit_per_ip_is_global(cluster: Cluster, redis_url: str) -> None:
    a, b = cluster(COCART_JWT_LIMIT_LOGIN_PER_IP="100 per minute")
    ports = [a.port, b.port]
    # Fourteen sessions, so that every refresh presents a token of its own
    # and the per-token limit (2 per minute) never interferes.
    logins = srv.concurrently([partial(srv.login, ports[i % 2]) for i in range(14)])
    assert {r.status for r in logins} == {200}, [r.describe() for r in logins]
    tokens = [r.body["refresh_token"] for r in logins]

    replies = srv.concurrently(
        [partial(srv.refresh, ports[i % 2], token) for i, token in enumerate(tokens)]
    )

    assert_no_server_errors(replies)
    assert Counter(r.status for r in replies) == {200: 10, 429: 4}, [r.describe() for r in replies]
    for reply in replies:
        assert "x-ratelimit-limit" in reply.headers
        if reply.status == 429:
            assert reply.code == "rate_limited"
            assert int(reply.headers["retry-after"]) >= 1
    assert len({r.pid for r in replies}) >= 3, "the requests did not spread over the workers"
    assert any("refresh_per_ip" in key for key in srv.redis_keys(redis_url))


@pytest.mark.parametrize("reuse_interval", ["0", "default"])
def test_one_refresh_token_on_every_worker(
    cluster: Cluster, database_url: str, reuse_interval: str
) -> None:
    settings = {
        "COCART_JWT_LIMIT_REFRESH_PER_IP": "1000 per minute",
        "COCART_JWT_LIMIT_REFRESH_PER_TOKEN": "1000 per minute",
    }
    if reuse_interval != "default":
        settings["COCART_JWT_REFRESH_REUSE_INTERVAL"] = reuse_interval
    a, b = cluster(**settings)
    first = srv.login(a.port)
    assert first.status == 200, first.describe()
    token, session_id = first.body["refresh_token"], first.body["session_id"]

    replies = srv.concurrently([partial(srv.refresh, port, token) for port in [a.port, b.port] * 6])

    assert_no_server_errors(replies)
    ok = [r for r in replies if r.status == 200]
    successors = {r.body["refresh_token"] for r in ok}
    if reuse_interval == "0":
        # Exactly one rotation; the others are replays (and revoke the session).
        assert len(ok) == 1, [r.describe() for r in replies]
        codes = {r.code for r in replies if r.status != 200}
        assert codes <= {"refresh_token_reused", "invalid_refresh_token"}, codes
        assert {r.status for r in replies} == {200, 401}
    else:
        # Every use inside the reuse interval gets the same successor.
        assert len(ok) == len(replies), [r.describe() for r in replies]
        assert len(successors) == 1
        assert successors != {token}
        assert {r.body["session_id"] for r in ok} == {session_id}
    assert srv.live_tokens(database_url, session_id) <= 1
    stats = srv.token_stats(database_url)
    assert stats.forked_sessions == []
    if reuse_interval == "default":
        assert srv.live_tokens(database_url, session_id) == 1
        # The session goes on with the successor.
        following = srv.refresh(b.port, successors.pop())
        assert following.status == 200, following.describe()


def poll_protected(
    ports: list[int], token: str, until: float, threads_per_port: int = 2
) -> list[srv.Reply]:
    """``GET /cart`` with ``token`` from several threads per server until ``until``."""
    replies: list[srv.Reply] = []
    lock = threading.Lock()

    def loop(port: int) -> srv.Reply:
        while time.monotonic() < until:
            reply = srv.call(port, "GET", "/cart", token=token, timeout=5)
            with lock:
                replies.append(reply)
        return reply

    srv.concurrently(
        [partial(loop, port) for port in ports for _ in range(threads_per_port)], timeout=30
    )
    return sorted(replies, key=lambda r: r.started)


def test_revocation_reaches_every_worker_within_a_second(cluster: Cluster) -> None:
    a, b = cluster()
    tokens = srv.login(a.port)
    assert tokens.status == 200, tokens.describe()
    access = tokens.body["access_token"]
    workers = a.worker_pids() | b.worker_pids()
    # Every worker accepts the token (and has its revocation view loaded).
    deadline = time.monotonic() + 10
    accepted: set[int] = set()
    while accepted != workers and time.monotonic() < deadline:
        warmup = poll_protected([a.port, b.port], access, time.monotonic() + 0.2)
        assert {r.status for r in warmup} == {200}, [r.describe() for r in warmup]
        accepted |= {r.pid for r in warmup if r.pid is not None}
    assert accepted == workers

    revoked_at = time.monotonic()
    revoke = srv.call(a.port, "POST", "/auth/revoke", token=access)
    assert (revoke.status, revoke.body) == (200, {"revoked": True}), revoke.describe()

    replies = poll_protected([a.port, b.port], access, revoked_at + 3.0)

    assert_no_server_errors(replies)
    assert {(r.status, r.code) for r in replies} <= {(200, ""), (401, "session_revoked")}
    late = [r for r in replies if r.started - revoked_at > PROPAGATION_BOUND]
    assert late
    assert all(r.status == 401 and r.code == "session_revoked" for r in late), [
        (round(r.started - revoked_at, 3), r.describe()) for r in late if r.status != 401
    ]
    # Every worker of both servers answered after the bound, all with 401.
    assert {r.pid for r in late} == workers
    assert a.worker_pids() | b.worker_pids() == workers
    last_accepted = max(
        (r.started + r.elapsed - revoked_at for r in replies if r.status == 200), default=0.0
    )
    first_refused = {
        pid: min(r.started - revoked_at for r in replies if r.pid == pid and r.status == 401)
        for pid in workers
    }
    print(
        f"\nrevocation propagation: last acceptance {last_accepted * 1000:.0f} ms after the "
        f"revoke was sent; first refusal per worker (ms): "
        + ", ".join(f"{pid}: {t * 1000:.0f}" for pid, t in sorted(first_refused.items()))
        + f"; {len(replies)} requests"
    )

"""A frozen database, then a restarted one, behind the extension's own engine.

The servers run ``embedded_app`` (the token tables in the extension's own
database, :data:`COCART_JWT_DATABASE_TIMEOUT` of 2 s) and reach PostgreSQL
through a TCP proxy in the test process. When the proxy freezes (forwards
nothing, keeps the connections open: a paused server), the routes that need
the database answer 503 after about the timeout instead of holding their
worker until the database answers again, and the routes that need none
answer as usual meanwhile. When the proxy drops every connection (a restart),
a worker that sat idle answers its next requests without a 503: its
connections are pinged before use.

Nothing here measures time: the proxy stays frozen until the assertions are
done, so a request that waited for the database would only come back at the
client's deadline (ten times the timeout), as a failure.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from urllib.parse import urlsplit

import pytest

from tests.integration import servers as srv
from tests.integration.conftest import dump_logs
from tests.integration.proxy import TcpProxy, through

pytestmark = [pytest.mark.integration, pytest.mark.needs_server]

TIMEOUT = 2
#: How long a client waits for any answer: the "generous deadline".
DEADLINE = 10 * TIMEOUT
APP = "tests.integration.embedded_app:create_app()"


@pytest.fixture
def proxy(postgresql_url: str) -> Iterator[TcpProxy]:
    parts = urlsplit(postgresql_url)
    with TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432) as proxy:
        yield proxy


@pytest.fixture
def servers(
    request: pytest.FixtureRequest, postgresql_url: str, proxy: TcpProxy
) -> Iterator[dict[str, srv.Server]]:
    """``frozen``: the revocation check on; ``idle``: off, so that no
    background poll touches its connections between requests."""
    common = {
        "FLASK_COCART_JWT_DATABASE_URI": through(postgresql_url, proxy.port),
        "FLASK_COCART_JWT_DATABASE_TIMEOUT": str(TIMEOUT),
        "FLASK_COCART_JWT_RATELIMIT_ENABLED": "false",
    }
    envs = [
        srv.server_env(postgresql_url, None, common),
        srv.server_env(
            postgresql_url, None, {**common, "FLASK_COCART_JWT_REVOCATION_CHECK": "false"}
        ),
    ]
    names = ("frozen", "idle")
    with srv.running(
        names, envs, app_spec=APP, ready_path="/health", on_exit=dump_logs(request)
    ) as started:
        yield dict(zip(names, started, strict=True))


def login(port: int) -> srv.Reply:
    return srv.call(port, "POST", "/auth/login", body=srv.DEMO, timeout=DEADLINE)


def get(port: int, path: str, token: str | None = None) -> srv.Reply:
    return srv.call(port, "GET", path, token=token, timeout=DEADLINE)


def describe(replies: list[srv.Reply]) -> list[str]:
    return [reply.describe() for reply in replies]


def test_a_frozen_database_answers_503_and_holds_no_worker(
    servers: dict[str, srv.Server], proxy: TcpProxy, postgresql_url: str
) -> None:
    port = servers["frozen"].port
    tokens = login(port)
    assert tokens.status == 200, tokens.describe()
    token = tokens.body["access_token"]
    warm = srv.concurrently([partial(get, port, "/me", token)] * 8)
    assert {r.status for r in warm} == {200}, describe(warm)

    proxy.freeze()
    try:
        needs_database: list[Callable[[], srv.Reply]] = [partial(login, port)] * 2
        needs_none: list[Callable[[], srv.Reply]] = [
            partial(get, port, "/me", token),
            partial(get, port, "/me", token),
            partial(get, port, "/auth/jwks.json"),
            partial(get, port, "/health"),
        ]
        replies = srv.concurrently(needs_database + needs_none, timeout=2 * DEADLINE)
    finally:
        proxy.thaw()

    for reply in replies[: len(needs_database)]:
        assert (reply.status, reply.code) == (503, "service_unavailable"), reply.describe()
        assert int(reply.headers["retry-after"]) >= 1
    assert {r.status for r in replies[len(needs_database) :]} == {200}, describe(replies)

    # Thawed, the database answers again; nothing was left half-written.
    after = login(port)
    assert after.status == 200, after.describe()
    stats = srv.token_stats(postgresql_url)
    assert stats.sessions_without_live_token == []
    assert stats.forked_sessions == []


def test_an_idle_worker_reconnects_after_a_database_restart_without_a_503(
    servers: dict[str, srv.Server], proxy: TcpProxy
) -> None:
    port = servers["idle"].port
    warm = srv.concurrently([partial(login, port)] * 8)
    assert {r.status for r in warm} == {200}, describe(warm)
    before = proxy.connections

    proxy.cut()  # the database restarts: every pooled connection is dead
    proxy.restore()

    replies = srv.concurrently([partial(login, port)] * 8)
    assert {r.status for r in replies} == {200}, describe(replies)
    assert proxy.connections > before  # new connections replaced the dead ones

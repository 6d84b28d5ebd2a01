"""Deploying: workers that start together, or while the database is down.

Real gunicorn servers (no ``--preload``) on a fresh PostgreSQL database:

- the example shop's workers all boot at once on an empty database, since
  ``create_app()`` never touches it; the init step (``flask init-db``) then
  runs once and every worker serves logins;
- workers whose tokens live in the extension's own database create its
  tables on their first requests, all at the same time, and every one of
  those requests succeeds;
- a worker respawned while the database is unreachable boots, serves what
  needs no database, answers 503 for what does, and its master stays up.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from functools import partial
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from tests.integration import servers as srv
from tests.integration.proxy import TcpProxy

pytestmark = [pytest.mark.integration, pytest.mark.needs_server]

NO_LIMITS = {"COCART_JWT_RATELIMIT_ENABLED": "false"}
ALICE = {"username": "alice", "password": "correct horse battery staple"}


def tables(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_shop_workers_boot_together_on_a_fresh_database(
    fresh_postgresql_url: str, start_servers: Callable[..., list[srv.Server]]
) -> None:
    servers = start_servers(fresh_postgresql_url, None, names=("a", "b"), **NO_LIMITS)
    assert all(server.process.poll() is None for server in servers)
    assert tables(fresh_postgresql_url) == set()  # no worker touched the database

    srv.init_database(fresh_postgresql_url)
    ports = [server.port for server in servers]
    logins = srv.concurrently([partial(srv.login, ports[i % 2]) for i in range(8)])
    assert {r.status for r in logins} == {200}, [r.describe() for r in logins]


def test_workers_create_the_extensions_tables_together(
    fresh_postgresql_url: str, start_servers: Callable[..., list[srv.Server]]
) -> None:
    servers = start_servers(
        fresh_postgresql_url,
        None,
        names=("a", "b"),
        workers=3,
        app_spec="tests.integration.wsgi:create_embedded_app()",
        ready_path="/ready",
        COCART_JWT_DATABASE_URI=fresh_postgresql_url,
        **NO_LIMITS,
    )
    assert tables(fresh_postgresql_url) == set()
    # The first request of each worker creates the tables; all at once.
    logins = srv.concurrently(
        [
            partial(srv.call, servers[i % 2].port, "POST", "/auth/login", body=ALICE)
            for i in range(12)
        ]
    )
    assert {r.status for r in logins} == {200}, [r.describe() for r in logins]
    assert {"cocart_jwt_sessions", "cocart_jwt_refresh_tokens"} <= tables(fresh_postgresql_url)


@pytest.fixture
def proxy(postgresql_url: str) -> Iterator[TcpProxy]:
    parts = urlsplit(postgresql_url)
    with TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432) as proxy:
        yield proxy


def test_worker_respawned_while_the_database_is_down(
    postgresql_url: str, proxy: TcpProxy, start_servers: Callable[..., list[srv.Server]]
) -> None:
    (server,) = start_servers(proxy.url(postgresql_url), None, names=("a",), **NO_LIMITS)
    assert srv.login(server.port).status == 200

    proxy.cut()
    victim = min(server.worker_pids())
    server.kill_worker(victim)
    # The replacement boots and answers (wait_replaced fails if the master exits).
    server.wait_replaced(victim)
    assert server.process.poll() is None
    login = srv.login(server.port)
    assert (login.status, login.code) == (503, "service_unavailable"), login.describe()

    proxy.restore()
    # Bounded: each worker reconnects by itself (pool_pre_ping) within a few tries.
    replies: list[srv.Reply] = []
    for _ in range(50):
        replies = srv.concurrently([partial(srv.login, server.port)] * 4)
        if {r.status for r in replies} == {200}:
            break
        time.sleep(0.1)
    assert {r.status for r in replies} == {200}, [r.describe() for r in replies]
    assert server.process.poll() is None

"""Revocations pushed across hosts: two gunicorn servers, two workers each.

The workers poll the database once a minute here, far above the documented
bound of a second, so a revocation made on server A that every worker of
server B refuses within a few seconds came by push: PostgreSQL's
``LISTEN/NOTIFY``, or Redis pub/sub for MariaDB. The same after server B's
database (PostgreSQL) or Redis (MariaDB) "restarts" behind a proxy that drops
every connection: B's workers reconnect by themselves and read what they
missed. The deadline is generous on purpose; how fast the push is, is a
benchmark figure (``benchmarks/revocation_push.py``), not a test assertion.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.integration import servers as srv
from tests.integration.proxy import TcpProxy

pytestmark = [pytest.mark.integration, pytest.mark.needs_server]

#: How long the test waits for every worker to refuse (the poll would take 60 s).
DEADLINE = 5.0


def wait_until_every_worker(
    server: srv.Server, ask: Callable[[], srv.Reply], timeout: float, pushing: bool = True
) -> None:
    """Call ``ask`` on ``server`` until each of its workers answered ``{"pushing": pushing}``."""
    deadline = time.monotonic() + timeout
    done: set[int] = set()
    workers = server.worker_pids()
    while done != workers:
        assert time.monotonic() < deadline, f"only {done} of {workers} answered in {timeout} s"
        replies = srv.concurrently([ask] * 4, timeout=30)
        done |= {r.pid for r in replies if r.pid is not None and r.body == {"pushing": pushing}}


def push_ready(server: srv.Server, token: str, timeout: float = 30.0) -> None:
    """Every worker of ``server`` checked ``token`` (loading its view), then subscribed."""
    workers, accepted = server.worker_pids(), set()
    deadline = time.monotonic() + timeout
    while accepted != workers and time.monotonic() < deadline:
        reply = srv.call(server.port, "GET", "/cart", token=token)
        assert reply.status == 200, reply.describe()
        accepted.add(reply.pid)
    wait_until_every_worker(server, lambda: push_state(server), timeout)


def push_state(server: srv.Server) -> srv.Reply:
    return srv.call(server.port, "GET", "/test/revocation-push")


def refused_by_every_worker(server: srv.Server, token: str, since: float) -> None:
    """Every worker of ``server`` refuses ``token`` within :data:`DEADLINE` of ``since``."""
    refused: set[int] = set()
    workers = server.worker_pids()
    while refused != workers and time.monotonic() - since < DEADLINE:
        replies = srv.concurrently(
            [lambda: srv.call(server.port, "GET", "/cart", token=token, timeout=5)] * 4,
            timeout=30,
        )
        assert all(r.status in (200, 401) for r in replies), [r.describe() for r in replies]
        refused |= {r.pid for r in replies if r.status == 401 and r.code == "session_revoked"}
    assert refused == workers, f"after {DEADLINE} s only {refused} of {workers} refuse"
    assert server.worker_pids() == workers  # the same workers: none restarted to learn it


def revoke(server: srv.Server, token: str) -> float:
    """Revoke ``token``'s session on ``server``; the time of the answer."""
    reply = srv.call(server.port, "POST", "/auth/revoke", token=token)
    assert (reply.status, reply.body) == (200, {"revoked": True}), reply.describe()
    return time.monotonic()


def test_a_revocation_is_pushed_to_every_worker(
    cluster: Callable[..., list[srv.Server]],
) -> None:
    a, b = cluster(TEST_REVOCATION_POLL_INTERVAL="60")
    tokens = srv.login(a.port)
    assert tokens.status == 200, tokens.describe()
    access = tokens.body["access_token"]
    for server in (a, b):
        push_ready(server, access)

    refused_by_every_worker(b, access, since=revoke(a, access))


@pytest.mark.parametrize(
    ("database_url", "restarted"),
    [("postgresql", "database"), ("mariadb", "redis")],
    indirect=["database_url"],
)
def test_the_push_comes_back_after_a_restart(
    start_servers: Callable[..., list[srv.Server]],
    database_url: str,
    redis_url: str,
    restarted: str,
) -> None:
    """Server B's database (PostgreSQL) or Redis (MariaDB) "restarts": a proxy
    in front of it drops every connection and refuses new ones, then accepts
    again. B's workers reconnect on their own, read the revocation made while
    they were cut off, and receive the next one by push."""
    url = database_url if restarted == "database" else redis_url
    parts = urlsplit(url)
    with TcpProxy(parts.hostname or "127.0.0.1", parts.port or 0) as proxy:
        netloc = parts.netloc.replace(f"{parts.hostname}:{parts.port}", f"127.0.0.1:{proxy.port}")
        proxied = urlunsplit(parts._replace(netloc=netloc))
        key = (
            "SQLALCHEMY_DATABASE_URI"
            if restarted == "database"
            else ("COCART_JWT_RATELIMIT_STORAGE_URI")
        )
        a, b = start_servers(
            database_url,
            redis_url,
            per_server={"b": {key: proxied}},
            TEST_REVOCATION_POLL_INTERVAL="60",
        )
        missed, later = srv.login(a.port), srv.login(a.port)
        assert {missed.status, later.status} == {200}, [missed.describe(), later.describe()]
        for server in (a, b):
            push_ready(server, missed.body["access_token"])

        proxy.cut()
        wait_until_every_worker(b, lambda: push_state(b), 30, pushing=False)
        revoke(a, missed.body["access_token"])  # B cannot hear this one
        proxy.restore()
        wait_until_every_worker(b, lambda: push_state(b), 30)

        refused_by_every_worker(b, missed.body["access_token"], since=time.monotonic())
        refused_by_every_worker(
            b, later.body["access_token"], since=revoke(a, later.body["access_token"])
        )

"""Revocations pushed across hosts: two gunicorn servers, two workers each.

The workers poll the database once a minute here, far above the documented
bound of a second, so a revocation made on server A that every worker of
server B refuses within a few seconds came by push: PostgreSQL's
``LISTEN/NOTIFY``, or Redis pub/sub for MariaDB. The deadline is generous on
purpose; how fast the push is, is a benchmark figure
(``benchmarks/revocation_push.py``), not a test assertion.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from tests.integration import servers as srv

pytestmark = [pytest.mark.integration, pytest.mark.needs_server]

#: How long the test waits for every worker to refuse (the poll would take 60 s).
DEADLINE = 5.0


def wait_until_every_worker(
    server: srv.Server, ask: Callable[[], srv.Reply], timeout: float
) -> None:
    """Call ``ask`` on ``server`` until each of its workers answered it with a true ``ok``."""
    deadline = time.monotonic() + timeout
    done: set[int] = set()
    workers = server.worker_pids()
    while done != workers:
        assert time.monotonic() < deadline, f"only {done} of {workers} answered in {timeout} s"
        replies = srv.concurrently([ask] * 4, timeout=30)
        done |= {r.pid for r in replies if r.pid is not None and r.body == {"pushing": True}}


def test_a_revocation_is_pushed_to_every_worker(
    cluster: Callable[..., list[srv.Server]],
) -> None:
    a, b = cluster(TEST_REVOCATION_POLL_INTERVAL="60")
    tokens = srv.login(a.port)
    assert tokens.status == 200, tokens.describe()
    access = tokens.body["access_token"]
    for server in (a, b):
        # Every worker checks the token (loading its view), then subscribes.
        workers, accepted = server.worker_pids(), set()
        deadline = time.monotonic() + 30
        while accepted != workers and time.monotonic() < deadline:
            reply = srv.call(server.port, "GET", "/cart", token=access)
            assert reply.status == 200, reply.describe()
            accepted.add(reply.pid)
        wait_until_every_worker(
            server, lambda port=server.port: srv.call(port, "GET", "/test/revocation-push"), 30
        )

    revoke = srv.call(a.port, "POST", "/auth/revoke", token=access)
    assert (revoke.status, revoke.body) == (200, {"revoked": True}), revoke.describe()
    answered_at = time.monotonic()

    refused: set[int] = set()
    workers = b.worker_pids()
    while refused != workers and time.monotonic() - answered_at < DEADLINE:
        replies = srv.concurrently(
            [lambda: srv.call(b.port, "GET", "/cart", token=access, timeout=5)] * 4, timeout=30
        )
        assert all(r.status in (200, 401) for r in replies), [r.describe() for r in replies]
        refused |= {r.pid for r in replies if r.status == 401 and r.code == "session_revoked"}
    assert refused == workers, f"after {DEADLINE} s only {refused} of {workers} refuse"
    assert b.worker_pids() == workers  # the same workers: none restarted to learn it

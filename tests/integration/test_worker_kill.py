"""A gunicorn worker is killed (SIGKILL) in the middle of a burst of refreshes.

The master replaces the worker. A client whose request died with it retries
with the same refresh token inside the reuse interval and gets a 200: either
the rotation had not happened, or it had and the retry gets the same
successor. Afterwards every session still has exactly one live refresh token
and none was revoked by a false re-use detection.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from functools import partial

import pytest

from tests.integration import servers as srv

pytestmark = [pytest.mark.integration, pytest.mark.needs_server]

CLIENTS = 12
#: Kill rounds: at least two, more (bounded) until a request died with its worker.
MIN_ROUNDS, MAX_ROUNDS = 2, 4
LIMITS = {
    "COCART_JWT_LIMIT_LOGIN_PER_IP": "1000 per minute",
    "COCART_JWT_LIMIT_REFRESH_PER_IP": "1000 per minute",
    "COCART_JWT_LIMIT_REFRESH_PER_TOKEN": "1000 per minute",
}
#: Seconds each refresh answer is held back on server a after its rotation
#: committed: the worker killed then surely dies with a committed, unanswered
#: refresh, the case the reuse interval exists for.
REFRESH_DELAY = "0.4"


def burst_and_kill(server: srv.Server, tokens: list[str], victim: int) -> list[srv.Reply]:
    """Refresh every token at once on ``server``; SIGKILL ``victim`` once it is busy."""
    result: list[list[srv.Reply]] = []

    def run() -> None:
        result.append(srv.concurrently([partial(srv.refresh, server.port, t) for t in tokens]))

    burst = threading.Thread(target=run, daemon=True)
    burst.start()
    # Both workers are now inside a held-back refresh (see REFRESH_DELAY).
    time.sleep(float(REFRESH_DELAY) / 2)
    server.kill_worker(victim)
    burst.join(timeout=60)
    assert not burst.is_alive()
    return result[0]


def test_worker_killed_during_refresh_burst(
    postgresql_url: str, redis_url: str, start_servers: Callable[..., list[srv.Server]]
) -> None:
    a, b = start_servers(
        postgresql_url, redis_url, per_server={"a": {"TEST_REFRESH_DELAY": REFRESH_DELAY}}, **LIMITS
    )
    logins = srv.concurrently([partial(srv.login, (a.port, b.port)[i % 2]) for i in range(CLIENTS)])
    assert {r.status for r in logins} == {200}, [r.describe() for r in logins]
    current = {r.body["session_id"]: r.body["refresh_token"] for r in logins}

    failed_total = 0
    killed_pids = []
    rounds = 0
    while rounds < MIN_ROUNDS or (failed_total == 0 and rounds < MAX_ROUNDS):
        rounds += 1
        victim = min(a.worker_pids())
        items = list(current.items())
        replies = burst_and_kill(a, [token for _, token in items], victim)
        killed_pids.append(victim)
        a.wait_replaced(victim)

        for (session_id, token), reply in zip(items, replies, strict=True):
            assert reply.status in (0, 200), reply.describe()
            if reply.status == 0:
                failed_total += 1
                # The client retries the same token (on the other server).
                reply = srv.refresh(b.port, token)
                assert reply.status == 200, (session_id, reply.describe())
            assert reply.body["session_id"] == session_id
            current[session_id] = reply.body["refresh_token"]

    # Every session goes on, each with exactly one live refresh token.
    final = srv.concurrently([partial(srv.refresh, b.port, tok) for tok in current.values()])
    assert {r.status for r in final} == {200}, [r.describe() for r in final]
    stats = srv.token_stats(postgresql_url)
    assert stats.sessions == CLIENTS
    assert stats.revoked_sessions == 0
    assert stats.forked_sessions == []
    assert stats.sessions_without_live_token == []
    assert all(pid not in a.worker_pids() for pid in killed_pids)
    print(f"\nworker kills: {rounds} workers killed, {failed_total} requests died and were retried")
    assert failed_total >= 1, "no request was in flight when the workers were killed"

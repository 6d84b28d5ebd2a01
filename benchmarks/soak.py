"""Bounded soak test: two gunicorn servers, one database, one Redis, real HTTP.

Starts the example shop as two independent gunicorn servers (two workers
each, the same set-up as ``tests/integration``), then runs client threads for
a fixed duration (and at most ``--max-requests`` requests) that mix logins,
protected calls (``GET /cart``), refreshes, retries of a just-rotated token
(inside the reuse interval), replays of consumed tokens (which revoke the
session) and logouts (``POST /auth/revoke``). Loopback only; everything stops
by itself.

At the end it checks, from the client side and in the database:

- no 5xx response and no failed connection;
- no session with two live (unconsumed) refresh tokens;
- no refresh token accepted after its session was revoked (client side: a
  200 to a refresh sent after the revocation was answered; database side: no
  token consumed or issued in a later second than its session's revocation).

It prints requests, rate and p50/p99 latency per kind, and exits non-zero if
an invariant is broken. Usage::

    .venv/bin/python benchmarks/soak.py --backend postgresql --duration 60 \\
        --output docs/benchmarks-soak.txt
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

# Run as a script, this folder comes first on sys.path, where a sibling module
# (e.g. ``limits.py``) would shadow a library: use the repository root instead.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from tests.conftest import SERVER_URLS  # noqa: E402
from tests.integration import servers as srv  # noqa: E402

LIMITS = {
    f"FLASK_COCART_JWT_LIMIT_{scope}": "1000000 per minute"
    for scope in (
        "LOGIN_PER_IP",
        "REFRESH_PER_IP",
        "REFRESH_PER_TOKEN",
        "REVOKE_PER_IP",
        "VALIDATE_PER_IP",
        "VALIDATE_PER_TOKEN",
    )
}
#: Relative weights of the actions of a logged-in client.
ACTIONS = {"cart": 60, "refresh": 25, "retry": 7, "replay": 4, "revoke": 4}
#: The Redis database the soak counts in (the tests use ``/5``).
REDIS_DB = 6


@dataclass
class Results:
    """What every client saw, merged under a lock."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: dict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))
    unexpected: Counter[str] = field(default_factory=Counter)
    accepted_after_revocation: int = 0
    revocations: int = 0
    requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, kind: str, reply: srv.Reply, expected: set[int]) -> bool:
        with self.lock:
            self.requests += 1
            self.latencies[kind].append(reply.elapsed)
            self.statuses[kind][reply.status] += 1
            if reply.status not in expected:
                self.unexpected[f"{kind}: {reply.describe()}"] += 1
        return reply.status in expected


class Client(threading.Thread):
    """One user agent: a session at a time, random actions."""

    def __init__(
        self,
        index: int,
        ports: list[int],
        results: Results,
        deadline: float,
        budget: threading.Semaphore,
    ) -> None:
        super().__init__(name=f"soak-{index}", daemon=True)
        self.rng = random.Random(index)  # noqa: S311 - load pattern, not security
        self.ports = ports
        self.results = results
        self.deadline = deadline
        self.budget = budget
        self.session: dict[str, str] | None = None
        self.parent: str | None = None  # consumed, its successor still unused
        self.consumed: list[str] = []  # consumed, with a consumed successor
        self.revoked_at: dict[str, float] = {}

    def port(self) -> int:
        return self.rng.choice(self.ports)

    def go_on(self) -> bool:
        return time.monotonic() < self.deadline and self.budget.acquire(blocking=False)

    def run(self) -> None:
        while self.go_on():
            if self.session is None:
                self.login()
                continue
            action = self.rng.choices(list(ACTIONS), weights=list(ACTIONS.values()))[0]
            getattr(self, action)()

    # -- actions ------------------------------------------------------------------

    def login(self) -> None:
        reply = srv.login(self.port())
        if self.results.record("login", reply, {200}):
            body = reply.body
            self.session = {
                "access": body["access_token"],
                "refresh": body["refresh_token"],
                "sid": body["session_id"],
            }
            self.parent, self.consumed = None, []

    def cart(self) -> None:
        assert self.session is not None
        reply = srv.call(self.port(), "GET", "/cart", token=self.session["access"])
        self.results.record("cart", reply, {200})

    def refresh(self) -> None:
        assert self.session is not None
        token = self.session["refresh"]
        reply = srv.refresh(self.port(), token)
        self.check_accepted(reply)
        if self.results.record("refresh", reply, {200}):
            if self.parent is not None:
                self.consumed.append(self.parent)
            self.parent = token
            self.session["refresh"] = reply.body["refresh_token"]
            self.session["access"] = reply.body["access_token"]

    def retry(self) -> None:
        """A lost response: the direct parent again, inside the reuse interval."""
        assert self.session is not None
        if self.parent is None:
            return self.refresh()
        reply = srv.refresh(self.port(), self.parent)
        self.check_accepted(reply)
        if self.results.record("retry", reply, {200}):
            if reply.body["refresh_token"] != self.session["refresh"]:
                with self.results.lock:
                    self.results.unexpected["retry: a different successor"] += 1
            self.session["access"] = reply.body["access_token"]
        return None

    def replay(self) -> None:
        """A stolen, consumed token: the session must be revoked."""
        assert self.session is not None
        if not self.consumed:
            return self.refresh()
        reply = srv.refresh(self.port(), self.rng.choice(self.consumed))
        self.check_accepted(reply)
        if self.results.record("replay", reply, {401}) and reply.code != "refresh_token_reused":
            with self.results.lock:
                self.results.unexpected[f"replay: {reply.code}"] += 1
        self.after_revocation(time.monotonic())
        return None

    def revoke(self) -> None:
        assert self.session is not None
        reply = srv.call(
            self.port(), "POST", "/auth/revoke", body={"refresh_token": self.session["refresh"]}
        )
        if self.results.record("revoke", reply, {200}):
            self.after_revocation(time.monotonic())

    def after_revocation(self, revoked_at: float) -> None:
        """Try the session's live token once more (must fail), then log in again."""
        assert self.session is not None
        self.revoked_at[self.session["sid"]] = revoked_at
        with self.results.lock:
            self.results.revocations += 1
        if self.go_on():
            reply = srv.refresh(self.port(), self.session["refresh"])
            self.check_accepted(reply)
            self.results.record("after_revoke", reply, {401})
        self.session = None

    def check_accepted(self, reply: srv.Reply) -> None:
        """Count a refresh accepted after its session's revocation was answered."""
        if reply.status != 200:
            return
        revoked_at = self.revoked_at.get(reply.body["session_id"])
        if revoked_at is not None and reply.started > revoked_at:
            with self.results.lock:
                self.results.accepted_after_revocation += 1


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=["postgresql", "mariadb"], default="postgresql")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds (default 60)")
    parser.add_argument("--max-requests", type=int, default=200_000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--output", type=Path, help="also write the report to this file")
    args = parser.parse_args(argv)

    base = SERVER_URLS[args.backend]
    database = srv.dedicated_database(base, "cocart_jwt_soak")
    srv.reset_database(database)
    redis_url = srv.redis_db_url(SERVER_URLS["redis"], REDIS_DB)
    srv.flush_redis(redis_url)
    env = srv.server_env(database, redis_url, LIMITS)

    results = Results()
    with srv.running(["a", "b"], env) as servers:
        ports = [s.port for s in servers]
        budget = threading.Semaphore(args.max_requests)
        started = time.monotonic()
        deadline = started + args.duration
        clients = [Client(i, ports, results, deadline, budget) for i in range(args.clients)]
        for client in clients:
            client.start()
        for client in clients:
            client.join(timeout=args.duration + 60)
        elapsed = time.monotonic() - started
        hung = sum(client.is_alive() for client in clients)
    stats = srv.token_stats(database)

    server_errors = sum(
        n for counter in results.statuses.values() for s, n in counter.items() if s >= 500
    )
    failed = sum(counter[0] for counter in results.statuses.values())
    lines = [
        "Flask-CoCart-JWT soak: 2 gunicorn servers x 2 sync workers, one "
        f"{args.backend} database, one Redis (rate limits on, raised), loopback",
        f"host: {platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, load average at the end {os.getloadavg()[0]:.1f}; "
        f"{args.clients} client threads, {elapsed:.1f} s",
        "",
        f"{'kind':<14}{'requests':>10}{'rate/s':>10}{'p50 ms':>10}{'p99 ms':>10}  statuses",
    ]
    for kind in ("login", "cart", "refresh", "retry", "replay", "revoke", "after_revoke"):
        latencies = results.latencies.get(kind, [])
        if not latencies:
            continue
        statuses = ", ".join(f"{s}: {n}" for s, n in sorted(results.statuses[kind].items()))
        lines.append(
            f"{kind:<14}{len(latencies):>10}{len(latencies) / elapsed:>10.1f}"
            f"{percentile(latencies, 0.5) * 1000:>10.1f}"
            f"{percentile(latencies, 0.99) * 1000:>10.1f}  {statuses}"
        )
    lines.append(
        f"{'total':<14}{results.requests:>10}{results.requests / elapsed:>10.1f}"
        f"{'':>20}  revocations: {results.revocations}"
    )
    checks = {
        "responses 5xx": server_errors,
        "failed connections": failed,
        "hung clients": hung,
        "unexpected answers": sum(results.unexpected.values()),
        "sessions with two live refresh tokens (db)": len(stats.forked_sessions),
        "live sessions without a live refresh token (db)": len(stats.sessions_without_live_token),
        "refreshes accepted after revocation (client)": results.accepted_after_revocation,
        "tokens consumed after revocation (db)": stats.used_after_revocation,
        "tokens issued after revocation (db)": stats.issued_after_revocation,
    }
    lines += ["", f"database: {stats.sessions} sessions, {stats.revoked_sessions} revoked", ""]
    lines += [f"{'OK ' if n == 0 else 'BAD'} {name}: {n}" for name, n in checks.items()]
    for what, n in results.unexpected.most_common(10):
        lines.append(f"    unexpected: {what} x{n}")
    report = "\n".join(lines) + "\n"
    print(report, end="")
    if args.output is not None:
        args.output.write_text(report)
    srv.drop_database(base, "cocart_jwt_soak")
    return 0 if all(n == 0 for n in checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())

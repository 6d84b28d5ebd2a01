"""How fast a revocation reaches another server: from the revoke answer to a refusal.

Two gunicorn servers (two sync workers each, no ``--preload``) serve the
example shop on one database, with the default configuration (rate limits
off so that the many logins are not refused, the revocation poll at its
default half second). For each sample a fresh session logs in on server A;
four threads call ``GET /cart`` on server B with its access token, one
connection per request, while the token is revoked on A
(``POST /auth/revoke``). The latency is the time from A's answer to the
first ``401 session_revoked`` answer on B (0 if B refused before A answered),
and, beside it, to the first refusal by *each* worker of B. It includes one
request of B (a few milliseconds on the loopback), so it is an upper bound
on the push itself::

    .venv/bin/python -m benchmarks.revocation_push [--samples 100] \\
        [--backend postgresql --backend mariadb]

PostgreSQL pushes with ``LISTEN/NOTIFY``; MariaDB through Redis pub/sub
(``redis://127.0.0.1:6379/0``, used for nothing else: no key is written).
Each backend gets a database of its own, dropped at the end. Also used by
``benchmarks/run.py``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
from dataclasses import dataclass

from tests.integration import servers as srv

URLS = {
    "postgresql": "postgresql+psycopg://postgres@127.0.0.1:5432/test",
    "mariadb": "mysql+pymysql://root@127.0.0.1:3306/test",
}
REDIS_URL = "redis://127.0.0.1:6379/0"
#: The longest one sample waits for B to refuse (the poll takes 0.5 s at most).
SAMPLE_TIMEOUT = 5.0


@dataclass(frozen=True)
class Propagation:
    """The latencies of one backend, in milliseconds."""

    backend: str
    first: list[float]
    every_worker: list[float]

    @staticmethod
    def percentile(values: list[float], q: float) -> float:
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]

    def p50(self, values: list[float] | None = None) -> float:
        return statistics.median(self.first if values is None else values)

    def p99(self, values: list[float] | None = None) -> float:
        return self.percentile(self.first if values is None else values, 0.99)


def _probe(port: int, token: str, stop: threading.Event, out: list[srv.Reply]) -> None:
    while not stop.is_set():
        out.append(srv.call(port, "GET", "/cart", token=token, timeout=5))


def _wait_pushing(server: srv.Server, token: str, timeout: float = 30.0) -> None:
    """Every worker of ``server`` has its view loaded and its push subscribed."""
    deadline = time.monotonic() + timeout
    workers = server.worker_pids()
    pushing: set[int] = set()
    while pushing != workers:
        if time.monotonic() > deadline:
            raise TimeoutError(f"workers {workers - pushing} never subscribed")
        srv.call(server.port, "GET", "/cart", token=token)
        reply = srv.call(server.port, "GET", "/test/revocation-push")
        if reply.body == {"pushing": True} and reply.pid is not None:
            pushing.add(reply.pid)


def sample(a: srv.Server, b: srv.Server) -> tuple[float, float]:
    """One revocation on A: ms to B's first refusal, and to each B worker's first."""
    login = srv.login(a.port)
    assert login.status == 200, login.describe()
    token = login.body["access_token"]
    replies: list[srv.Reply] = []
    stop = threading.Event()
    threads = [
        threading.Thread(target=_probe, args=(b.port, token, stop, replies), daemon=True)
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.02)
        revoke = srv.call(a.port, "POST", "/auth/revoke", token=token)
        answered = time.monotonic()
        assert revoke.status == 200, revoke.describe()
        workers = b.worker_pids()
        while time.monotonic() - answered < SAMPLE_TIMEOUT:
            refused = {r.pid for r in list(replies) if r.status == 401}
            if refused >= workers:
                break
            time.sleep(0.005)
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
    bad = [r.describe() for r in replies if r.status not in (200, 401)]
    if bad:
        raise RuntimeError(f"unexpected answers on B: {bad[:3]}")
    first: dict[int, float] = {}
    for reply in replies:
        if reply.status == 401 and reply.pid is not None:
            at = max(0.0, reply.started + reply.elapsed - answered) * 1000
            first[reply.pid] = min(first.get(reply.pid, at), at)
    if set(first) != workers:
        late = workers - set(first)
        raise RuntimeError(f"B workers {late} still accept after {SAMPLE_TIMEOUT} s")
    return min(first.values()), max(first.values())


def measure(backend: str, samples: int) -> Propagation:
    """Start the two servers on ``backend`` and take ``samples`` revocations."""
    name = f"cocart_jwt_bench_push_{os.getpid()}"
    url = srv.dedicated_database(URLS[backend], name)
    if url == URLS[backend]:
        raise RuntimeError(f"cannot create a database of its own on {backend}")
    try:
        srv.reset_database(url)
        env = srv.server_env(url, REDIS_URL, {"FLASK_COCART_JWT_RATELIMIT_ENABLED": "false"})
        with srv.running(["a", "b"], env) as (a, b):
            login = srv.login(a.port)
            assert login.status == 200, login.describe()
            for server in (a, b):
                _wait_pushing(server, login.body["access_token"])
            results = [sample(a, b) for _ in range(samples)]
    finally:
        srv.drop_database(URLS[backend], name)
    return Propagation(backend, [r[0] for r in results], [r[1] for r in results])


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--backend", action="append", choices=list(URLS))
    args = parser.parse_args()
    for backend in args.backend or list(URLS):
        result = measure(backend, args.samples)
        every = result.every_worker
        print(
            f"{backend:10} first refusal on B: p50 {result.p50():6.1f} ms, p99 "
            f"{result.p99():6.1f} ms; every worker of B: p50 {result.p50(every):6.1f} ms, "
            f"p99 {result.p99(every):6.1f} ms ({args.samples} revocations)"
        )


if __name__ == "__main__":
    main()

"""Every benchmark of the performance targets, in one process, with a report.

Run by hand (never in the test suite)::

    .venv/bin/python -m benchmarks.run [--quick] [--only SECTION] [--output FILE]

Six sections; the timed ones run in interleaved rounds (the order of the
cases shuffled every round, ``gc.collect()`` before each timed block, medians
over rounds):

1. protected route, through Flask's test client, for the cases of
   ``benchmarks/cases.py``: the documented setup (``CoCartJWT(db=db)``, a
   view that reads the identity) against Flask-JWT-Extended with the same
   route (plain and with its documented database blocklist), the minimal
   app of 0.1, and an unprotected route with and without the extension;
   then ``get_jwt_identity()`` and ``get_jwt()`` after the check --
   ``benchmarks/protected.py``;
2. the same cases counted in CPU instructions per request under callgrind
   (medians of repeated runs), which noise hardly moves --
   ``benchmarks/instructions.py`` (skipped without valgrind);
3. ``POST /auth/validate-token`` with our limits on memory and on Redis,
   against raw Flask-Limiter with the same two limits --
   ``benchmarks/ratelimits.py``;
4. refresh rotation (``POST /auth/refresh-token`` chained on successive
   tokens, rate limits off) on SQLite and on PostgreSQL, against a floor: one
   raw SQLAlchemy Core transaction (one ``UPDATE``, one ``INSERT``) on
   equivalent tables of the same database plus one PyJWT ``jwt.encode``;
5. the protected route over real HTTP: gunicorn (two sync workers, loopback)
   serving ``benchmarks/http_app.py``, loaded by a few threads of
   :mod:`http.client` with a fixed request count and a duration cap;
6. a revocation on one gunicorn server until another server refuses the
   token, on PostgreSQL (``NOTIFY``) and MariaDB + Redis (pub/sub) --
   ``benchmarks/revocation_push.py``.

It prints the medians and the ratios against the targets, and writes the
table to ``docs/benchmarks-results.rst`` (included by ``docs/benchmarks.rst``;
a ``--quick`` run only prints, unless ``--output`` is given).
Redis (``127.0.0.1:6379``), PostgreSQL (``127.0.0.1:5432``), MariaDB
(``127.0.0.1:3306``) and valgrind are optional: a case whose server is absent
is skipped with a note. The PostgreSQL database
is created for the run and dropped after it; gunicorn is always stopped.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import hashlib
import http.client
import importlib.metadata
import os
import platform
import random
import socket
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jwt
import sqlalchemy as sa
from flask import Flask

from benchmarks import cases, instructions, protected, ratelimits
from tests.integration import servers as srv

SECRET = protected.SECRET
REDIS_URL = "redis://127.0.0.1:6379/0"
POSTGRESQL_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
OUTPUT = Path(__file__).resolve().parents[1] / "docs" / "benchmarks-results.rst"


@dataclass(frozen=True)
class Sizes:
    """How much work each section does (``--quick`` makes everything small)."""

    rounds: int
    protected_requests: int
    limit_requests: int
    refresh_rounds: int
    refreshes: int
    http_rounds: int
    http_requests: int
    http_cap: float
    instruction_requests: int
    instruction_repeat: int
    push_samples: int


FULL = Sizes(31, 400, 300, 11, 150, 7, 2000, 20.0, 200, 3, 100)
QUICK = Sizes(3, 100, 100, 3, 40, 2, 300, 5.0, 50, 1, 10)


@dataclass(frozen=True)
class Target:
    """One target of the issue, measured."""

    name: str
    ratio: float | None  # None: skipped
    limit: float
    higher_is_better: bool = False
    note: str = ""

    @property
    def verdict(self) -> str:
        if self.ratio is None:
            return "skipped"
        ok = self.ratio >= self.limit if self.higher_is_better else self.ratio <= self.limit
        return "PASS" if ok else "MISS"

    @property
    def wanted(self) -> str:
        return f"{'>=' if self.higher_is_better else '<='} {self.limit:g}"


@dataclass
class Report:
    """Everything measured, in the order it is printed."""

    cases: list[tuple[str, str, str, str]]  # section, case, median, over its baseline
    targets: list[Target]
    notes: list[str]

    def add(
        self,
        section: str,
        results: dict[str, float],
        unit: str = "µs",
        overheads: dict[str, float] | None = None,
    ) -> None:
        """Record ``results``; ``overheads`` has a case's cost over its baseline."""
        digits = 0 if unit == "instructions" else 1
        for name, value in results.items():
            over = (overheads or {}).get(name)
            extra = "" if over is None else f"{over:+,.{digits}f} {unit}"
            self.cases.append((section, name, f"{value:,.{digits}f} {unit}", extra))


def reachable(url: str) -> bool:
    """Whether the server of ``url`` accepts a TCP connection within 2 s."""
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname, parts.port or 0), timeout=2):
            return True
    except OSError:
        return False


def warm(calls: dict[str, Callable[[], Any]], n: int) -> None:
    for call in calls.values():
        for _ in range(n):
            call()


# -- 1. protected route ------------------------------------------------------


def bench_protected(sizes: Sizes, report: Report) -> None:
    print("\n[1] protected route, test client (µs per request)", flush=True)
    calls = {name: cases.prepare(name) for name in cases.CASES}
    warm(calls, min(200, sizes.protected_requests))
    samples = protected.rounds_of(calls, sizes.rounds, sizes.protected_requests)
    results = {name: statistics.median(values) for name, values in samples.items()}
    over = protected.overheads(samples)
    report.add("protected route", results, overheads=over)
    for name, us in results.items():
        print(f"    {name:55} {us:9.1f}   overhead {over[name]:8.1f}")
    report.targets += protected_targets(over, "")
    full = over[cases.DOC_OURS_FULL] / over[cases.DOC_FJE]
    print(f"    documented setup, memo of verified tokens off: {full:.3f} of FJE (for information)")
    report.notes.append(f"documented setup, memo of verified tokens off, timed: {full:.3f} of FJE")
    open_cost = over[cases.OPEN_WITH] / results[cases.OPEN_WITHOUT]
    print(f"    unprotected route with the extension: {open_cost:+.2%} (timed, for information)")
    for name, us in protected.accessors_us().items():
        print(f"    {name} after the check: {us:.3f} µs")
        report.targets.append(Target(f"{name} after the check, µs per call", us, 1.0))


def protected_targets(over: dict[str, float], measure: str) -> list[Target]:
    """The protected-route targets from each case's overhead over its baseline."""
    return [
        Target(
            f"documented setup: auth overhead{measure}, ours / Flask-JWT-Extended",
            over[cases.DOC_OURS] / over[cases.DOC_FJE],
            0.10,
        ),
        Target(
            f"documented setup: auth overhead{measure} with revocation check, "
            "ours / FJE + DB blocklist",
            over[cases.DOC_OURS_REV] / over[cases.DOC_FJE_DB],
            0.08,
        ),
        Target(
            f"minimal app: auth overhead{measure}, ours / Flask-JWT-Extended",
            over[cases.OURS] / over[cases.FJE],
            0.10,
        ),
        Target(
            f"minimal app: auth overhead{measure} with revocation check, ours / FJE + DB blocklist",
            over[cases.OURS_REV] / over[cases.FJE_DB],
            0.08,
        ),
    ]


def bench_instructions(sizes: Sizes, report: Report) -> None:
    print("\n[2] protected route, instructions per request (callgrind)", flush=True)
    if not instructions.available():
        note = "valgrind not installed: instruction counts skipped"
        print("    " + note)
        report.notes.append(note)
        return
    results = instructions.per_request(sizes.instruction_requests, sizes.instruction_repeat)
    over = {name: count - results[cases.BASELINES[name]] for name, count in results.items()}
    report.add("protected route", results, unit="instructions", overheads=over)
    for name, count in results.items():
        print(f"    {name:55} {count:12,.0f}   overhead {over[name]:12,.0f}")
    report.targets += protected_targets(over, " in instructions")
    full = over[cases.DOC_OURS_FULL] / over[cases.DOC_FJE]
    print(f"    documented setup, memo of verified tokens off: {full:.3f} of FJE (for information)")
    report.notes.append(
        f"documented setup, memo of verified tokens off, instructions: {full:.3f} of FJE"
    )
    report.targets.append(
        Target(
            "unprotected route, extra instructions with the extension installed",
            over[cases.OPEN_WITH] / results[cases.OPEN_WITHOUT],
            0.01,
        )
    )


# -- 2. rate limits ------------------------------------------------------------


def bench_limits(sizes: Sizes, report: Report) -> None:
    print("\n[3] validate-token with limits vs raw Flask-Limiter (µs per request)", flush=True)
    prefix = f"/bench-{uuid.uuid4().hex[:8]}"
    storages = {"memory": "memory://"}
    if reachable(REDIS_URL):
        storages["Redis"] = REDIS_URL
    else:
        note = f"Redis not reachable at {REDIS_URL}: Redis limit cases skipped"
        print("    " + note)
        report.notes.append(note)
    calls = {
        "ours, limits off": ratelimits.build_ours(None, prefix),
        "raw Flask-Limiter, no limits": ratelimits.build_flask_limiter(None),
    }
    for label, uri in storages.items():
        calls[f"ours, limits on {label}"] = ratelimits.build_ours(uri, prefix)
        calls[f"raw Flask-Limiter on {label}"] = ratelimits.build_flask_limiter(uri)
    try:
        warm(calls, min(200, sizes.limit_requests))
        samples = protected.rounds_of(calls, sizes.rounds, sizes.limit_requests)
    finally:
        if "Redis" in storages:
            ratelimits.cleanup(REDIS_URL, prefix)
    results = {name: statistics.median(values) for name, values in samples.items()}
    over = {}
    for label in storages:
        for case, baseline in (
            (f"ours, limits on {label}", "ours, limits off"),
            (f"raw Flask-Limiter on {label}", "raw Flask-Limiter, no limits"),
        ):
            over[case] = protected.paired_overhead(samples, case, baseline)
    report.add("rate limits", results, overheads=over)
    for name, us in results.items():
        print(f"    {name:40} {us:9.1f}")
    for label in ("memory", "Redis"):
        name = f"limiter overhead on {label}, ours / raw Flask-Limiter"
        if label not in storages:
            report.targets.append(Target(name, None, 1.0, note="Redis not reachable"))
            continue
        ours = over[f"ours, limits on {label}"]
        raw = over[f"raw Flask-Limiter on {label}"]
        print(f"    overhead on {label}: ours {ours:.1f} µs, raw Flask-Limiter {raw:.1f} µs")
        report.targets.append(Target(name, ours / raw, 1.0))


# -- 3. refresh rotation -----------------------------------------------------


class RefreshChain:
    """``POST /auth/refresh-token`` with the token the previous call returned."""

    def __init__(self, database_uri: str) -> None:
        from flask_cocart_jwt import CoCartJWT

        app = Flask("bench_refresh", instance_path=tempfile.mkdtemp())
        app.config.update(
            COCART_JWT_SECRET_KEY=SECRET,
            COCART_JWT_DATABASE_URI=database_uri,
            COCART_JWT_RATELIMIT_ENABLED=False,
        )
        self.ext = CoCartJWT(app)
        self.ext.register_credentials_checker(lambda username, password: username)
        self.app = app
        self.client = app.test_client()
        login = self.client.post("/auth/login", json={"username": "alice", "password": "x"})
        assert login.status_code == 200, login.get_data()
        self.token: str = login.json["refresh_token"]  # type: ignore[index]

    def __call__(self) -> None:
        response = self.client.post("/auth/refresh-token", json={"refresh_token": self.token})
        if response.status_code != 200:
            raise RuntimeError(f"refresh failed: {response.get_data()!r}")
        self.token = response.json["refresh_token"]  # type: ignore[index]

    def close(self) -> None:
        """Stop the revocation poller and release the connections."""
        self.ext.get_service(self.app).close()


class Floor:
    """The least a rotation must do: one transaction (``UPDATE`` + ``INSERT``), one JWT.

    On tables shaped like the extension's refresh tokens, in the same
    database, through a plain SQLAlchemy Core engine.
    """

    def __init__(self, url: str) -> None:
        kwargs: dict[str, Any] = {}
        if url.startswith("sqlite"):
            kwargs["connect_args"] = {"timeout": 30}
        self.engine = sa.create_engine(url, **kwargs)
        ident = sa.BigInteger().with_variant(sa.Integer, "sqlite")
        metadata = sa.MetaData()
        self.table = sa.Table(
            "bench_floor_refresh_tokens",
            metadata,
            sa.Column("id", ident, primary_key=True, autoincrement=True),
            sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
            sa.Column("session_id", sa.String(32), nullable=False, index=True),
            sa.Column("parent_id", ident, nullable=True),
            sa.Column("created_at", sa.BigInteger, nullable=False),
            sa.Column("expires_at", sa.BigInteger, nullable=False),
            sa.Column("used_at", sa.BigInteger, nullable=True),
        )
        metadata.drop_all(self.engine)
        metadata.create_all(self.engine)
        self.count = 0
        self.session_id = uuid.uuid4().hex
        self.previous = self._insert_first()

    def _insert_first(self) -> int:
        with self.engine.begin() as conn:
            result = conn.execute(self.table.insert().values(self._row(None)))
            primary_key = result.inserted_primary_key
            assert primary_key is not None
            return int(primary_key[0])

    def _row(self, parent: int | None) -> dict[str, Any]:
        self.count += 1
        now = int(time.time())
        return {
            # A digest, as the extension stores: each insert lands at a random
            # place of the unique index, as a real rotation's does (a counter
            # would always land at its right end, which no rotation can).
            "token_hash": hashlib.sha256(f"{self.session_id}{self.count}".encode()).hexdigest(),
            "session_id": self.session_id,
            "parent_id": parent,
            "created_at": now,
            "expires_at": now + 86400,
        }

    def __call__(self) -> None:
        t = self.table
        now = int(time.time())
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(t)
                .where(t.c.id == self.previous, t.c.used_at.is_(None))
                .values(used_at=now)
            )
            primary_key = conn.execute(
                t.insert().values(self._row(self.previous))
            ).inserted_primary_key
        assert primary_key is not None
        jwt.encode(
            {"sub": "alice", "sid": self.session_id, "iat": now, "exp": now + 900},
            SECRET,
            algorithm="HS256",
        )
        self.previous = int(primary_key[0])

    def close(self) -> None:
        self.engine.dispose()


@contextmanager
def postgresql_database() -> Iterator[str | None]:
    """A database of its own on the local PostgreSQL, dropped after; ``None`` if absent."""
    if not reachable(POSTGRESQL_URL.replace("+psycopg", "")):
        yield None
        return
    name = f"cocart_jwt_bench_{os.getpid()}"
    url = srv.dedicated_database(POSTGRESQL_URL, name)
    if url == POSTGRESQL_URL:  # could not create it: do not touch the tests' database
        yield None
        return
    try:
        yield url
    finally:
        srv.drop_database(POSTGRESQL_URL, name)


def bench_refresh(sizes: Sizes, report: Report) -> None:
    print("\n[4] refresh rotation vs floor (µs per refresh)", flush=True)
    directory = tempfile.mkdtemp(prefix="cocart-bench-")
    with postgresql_database() as pg_url:
        databases = {"SQLite": f"sqlite:///{directory}/refresh.sqlite3"}
        if pg_url is not None:
            databases["PostgreSQL"] = pg_url
        else:
            note = f"PostgreSQL not usable at {POSTGRESQL_URL}: PostgreSQL refresh cases skipped"
            print("    " + note)
            report.notes.append(note)
        chains: list[RefreshChain | Floor] = []
        calls: dict[str, Callable[[], Any]] = {}
        try:
            for label, url in databases.items():
                chain, floor = RefreshChain(url), Floor(url)
                chains += [chain, floor]
                calls[f"refresh rotation, {label}"] = chain
                calls[f"floor (UPDATE + INSERT + jwt.encode), {label}"] = floor
            warm(calls, min(30, sizes.refreshes))
            results = protected.interleaved(calls, sizes.refresh_rounds, sizes.refreshes)
        finally:
            for each in chains:
                each.close()
    report.add("refresh", results)
    for name, us in results.items():
        print(f"    {name:45} {us:9.1f}")
    for label, limit in (("SQLite", 2.0), ("PostgreSQL", 1.5)):
        name = f"refresh round trip on {label} / floor"
        if label not in databases:
            report.targets.append(Target(name, None, limit, note="PostgreSQL not usable"))
            continue
        ratio = (
            results[f"refresh rotation, {label}"]
            / results[f"floor (UPDATE + INSERT + jwt.encode), {label}"]
        )
        report.targets.append(Target(name, ratio, limit))


# -- 4. HTTP throughput under gunicorn ---------------------------------------


def load(port: int, path: str, headers: dict[str, str], requests: int, cap: float) -> float:
    """Requests per second of ``GET path`` from 4 threads, one connection per request.

    Stops after ``requests`` requests or ``cap`` seconds, whichever first;
    raises if any request failed.
    """
    lock = threading.Lock()
    budget = [requests]
    done = [0]
    failures: list[str] = []
    deadline = time.monotonic() + cap

    def worker() -> None:
        while time.monotonic() < deadline:
            with lock:
                if budget[0] <= 0:
                    return
                budget[0] -= 1
            status, error = 0, ""
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            try:
                conn.request("GET", path, headers=headers)
                response = conn.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException) as exc:
                status, error = 0, repr(exc)
            finally:
                conn.close()
            with lock:
                if status == 200:
                    done[0] += 1
                else:
                    failures.append(error if status == 0 else str(status))

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(4)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(cap + 15)
    elapsed = time.perf_counter() - start
    if any(thread.is_alive() for thread in threads):
        raise TimeoutError(f"load on {path} still running after {cap + 15} s")
    if failures:
        raise RuntimeError(f"{len(failures)} failed requests on {path}: {failures[:3]}")
    return done[0] / elapsed


def bench_http(sizes: Sizes, report: Report) -> None:
    from benchmarks import http_app

    print("\n[5] protected route over HTTP, gunicorn 2 sync workers (requests/s)", flush=True)
    directory = tempfile.mkdtemp(prefix="cocart-bench-http-")
    database = f"sqlite:///{directory}/tokens.sqlite3"
    # Create the tables and a token here, before any worker starts.
    app = http_app.create_app(
        {"COCART_JWT_SECRET_KEY": SECRET, "COCART_JWT_DATABASE_URI": database}
    )
    with app.test_request_context():
        token = app.extensions["cocart_jwt"].issue_tokens("alice").access_token
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLASK_", "COCART_JWT_"))}
    env.update(
        FLASK_COCART_JWT_SECRET_KEY=SECRET,
        FLASK_COCART_JWT_DATABASE_URI=database,
        PYTHONDONTWRITEBYTECODE="1",
    )
    headers = {"Authorization": f"Bearer {token}", "Connection": "close"}
    paths = {
        "bare Flask (GET /bare)": "/bare",
        "CoCart-JWT, revocation on (GET /protected)": "/protected",
    }
    samples: dict[str, list[float]] = {name: [] for name in paths}
    with srv.running(
        ["bench"], env, app_spec="benchmarks.http_app:create_app()", ready_path="/bare"
    ) as (server,):
        for path in paths.values():
            reply = srv.call(server.port, "GET", path, token=token)
            assert reply.status == 200, reply.describe()
            load(server.port, path, headers, 100, sizes.http_cap)  # warm up
        order = list(paths)
        for _ in range(sizes.http_rounds):
            random.shuffle(order)
            for name in order:
                gc.collect()
                samples[name].append(
                    load(server.port, paths[name], headers, sizes.http_requests, sizes.http_cap)
                )
    results = {name: statistics.median(values) for name, values in samples.items()}
    report.add("HTTP (gunicorn)", results, "req/s")
    for name, rps in results.items():
        print(f"    {name:45} {rps:9.1f}")
    bare, ours = results.values()
    report.targets.append(
        Target("throughput under gunicorn, ours / bare Flask", ours / bare, 0.95, True)
    )


# -- 6. revocation pushed to another server -------------------------------------


def bench_push(sizes: Sizes, report: Report) -> None:
    from benchmarks import revocation_push

    print("\n[6] revocation on server A to refusal on server B (ms)", flush=True)
    for backend, label in (("postgresql", "PostgreSQL NOTIFY"), ("mariadb", "MariaDB + Redis")):
        name = f"revocation push p99, {label}, ms from the revoke answer to B's refusal"
        server = revocation_push.URLS[backend].replace("+psycopg", "").replace("+pymysql", "")
        if not (reachable(server) and reachable(revocation_push.REDIS_URL)):
            note = f"{label}: server not reachable, push latency skipped"
            print("    " + note)
            report.notes.append(note)
            report.targets.append(Target(name, None, 50.0, note="server not reachable"))
            continue
        result = revocation_push.measure(backend, sizes.push_samples)
        every = result.every_worker
        rows = {
            f"revocation push, {label}: first refusal on B, p50": result.p50(),
            f"revocation push, {label}: first refusal on B, p99": result.p99(),
            f"revocation push, {label}: every worker of B, p50": result.p50(every),
            f"revocation push, {label}: every worker of B, p99": result.p99(every),
        }
        report.add("revocation push", rows, unit="ms")
        for row, ms in rows.items():
            print(f"    {row:65} {ms:7.1f} ms")
        report.targets.append(Target(name, result.p99(), 50.0))


#: The sections, in the order a full run takes them.
SECTIONS: dict[str, Callable[[Sizes, Report], None]] = {
    "protected": bench_protected,
    "instructions": bench_instructions,
    "limits": bench_limits,
    "refresh": bench_refresh,
    "http": bench_http,
    "push": bench_push,
}


# -- report ------------------------------------------------------------------


def versions() -> str:
    names = ("Flask", "Flask-JWT-Extended", "Flask-Limiter", "SQLAlchemy", "PyJWT", "gunicorn")
    return ", ".join(f"{name} {importlib.metadata.version(name)}" for name in names)


def render(report: Report, header: dict[str, str]) -> str:
    """The reStructuredText of the results (included by ``docs/benchmarks.rst``)."""
    lines = [
        ".. Generated by ``python -m benchmarks.run``; do not edit by hand.",
        "",
        f"Measured {header['date']} on {header['host']};",
        f"load average (1, 5, 15 min) at start {header['load']}.",
        f"Command: ``{header['command']}``.",
        f"Versions: {header['versions']}.",
        "*Over baseline*: for timed cases, the median over rounds of the case minus its",
        "baseline in the same round; for instruction counts, the plain difference.",
        "",
        ".. list-table:: Medians over interleaved rounds",
        "   :header-rows: 1",
        "   :widths: 18 50 16 16",
        "",
        "   * - Section",
        "     - Case",
        "     - Median",
        "     - Over baseline",
    ]
    for section, name, value, extra in report.cases:
        lines += [
            f"   * - {section}",
            f"     - {name}",
            f"     - {value}",
            f"     - {extra or '--'}",
        ]
    lines += [
        "",
        ".. list-table:: Targets of the issue",
        "   :header-rows: 1",
        "   :widths: 55 15 15 15",
        "",
        "   * - Target",
        "     - Measured",
        "     - Wanted",
        "     - Result",
    ]
    for target in report.targets:
        measured = "--" if target.ratio is None else f"{target.ratio:.3f}"
        verdict = target.verdict + (f" ({target.note})" if target.note else "")
        lines += [
            f"   * - {target.name}",
            f"     - {measured}",
            f"     - {target.wanted}",
            f"     - {verdict}",
        ]
    for note in report.notes:
        lines += ["", f"Note: {note}."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: few rounds")
    parser.add_argument(
        "--only",
        action="append",
        choices=list(SECTIONS),
        help="run only this section (repeatable); the table is then not written unless "
        "--output is given",
    )
    parser.add_argument(
        "--output",
        type=Path,
        help="where to write the table (default: docs/benchmarks-results.rst, "
        "not written by a --quick run unless given)",
    )
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    load1, load5, load15 = os.getloadavg()
    header = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "host": f"{platform.python_implementation()} {platform.python_version()}, "
        f"{platform.platform(terse=True)}, {os.cpu_count()} CPUs",
        "load": f"{load1:.2f} / {load5:.2f} / {load15:.2f}",
        "command": " ".join(["python -m benchmarks.run", *(argv or sys.argv[1:])]),
        "versions": versions(),
    }
    print(f"{header['date']}: {header['host']}, load average {header['load']}")
    report = Report([], [], [])
    for name in args.only or SECTIONS:
        SECTIONS[name](sizes, report)
    print(f"\n{'target':80} {'measured':>9} {'wanted':>8}  result")
    for target in report.targets:
        measured = "--" if target.ratio is None else f"{target.ratio:.3f}"
        print(f"{target.name:80} {measured:>9} {target.wanted:>8}  {target.verdict}")
    output = args.output or (None if args.quick or args.only else OUTPUT)
    if output is not None:
        output.write_text(render(report, header), encoding="utf-8")
        print(f"\nwritten to {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

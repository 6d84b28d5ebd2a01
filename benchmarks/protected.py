"""Protected-route overhead: bare Flask, Flask-JWT-Extended, Flask-CoCart-JWT.

Run by hand (never in the test suite)::

    .venv/bin/python -m benchmarks.protected [--rounds 15] [--requests 400]
    .venv/bin/python -m benchmarks.protected --profile "CoCart-JWT, revocation check on" \
        --requests 20000

All cases run in one process, in interleaved rounds (in a shuffled order,
``gc.collect()`` before each timed block), through Flask's test client; the
figures are medians of the per-request time of each round. The builders
(``CASES``, ``prepare``) and ``interleaved`` are also used by
``benchmarks/run.py``.
Auth overhead is a case's time minus bare Flask's.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping
from typing import Any

from flask import Flask, jsonify

SECRET = "benchmark-secret-0123456789-abcdefghijklmnopqrstuvwxyz"


def _bare() -> tuple[Flask, dict[str, str]]:
    app = Flask("bare")

    @app.get("/data")
    def data() -> Any:
        return jsonify(ok=True)

    # The same header as the other cases, so that only checking it counts.
    return app, {"Authorization": "Bearer " + "x" * 240}


def _fje(blocklist: bool) -> tuple[Flask, dict[str, str]]:
    from flask_jwt_extended import JWTManager, create_access_token, jwt_required

    app = Flask("fje_db" if blocklist else "fje")
    app.config["JWT_SECRET_KEY"] = SECRET
    manager = JWTManager(app)
    if blocklist:
        import sqlalchemy as sa

        engine = sa.create_engine(f"sqlite:///{tempfile.mkdtemp()}/blocklist.sqlite3")
        meta = sa.MetaData()
        revoked = sa.Table("revoked", meta, sa.Column("jti", sa.String(64), primary_key=True))
        meta.create_all(engine)

        @manager.token_in_blocklist_loader
        def in_blocklist(_header: dict[str, Any], payload: dict[str, Any]) -> bool:
            with engine.connect() as conn:
                query = sa.select(revoked.c.jti).where(revoked.c.jti == payload["jti"])
                return conn.execute(query).first() is not None

    @app.get("/data")
    @jwt_required()
    def data() -> Any:
        return jsonify(ok=True)

    with app.app_context():
        token = create_access_token("alice")
    return app, {"Authorization": f"Bearer {token}"}


def _ours(revocation_check: bool) -> tuple[Flask, dict[str, str]]:
    from flask_cocart_jwt import CoCartJWT, jwt_required

    app = Flask("ours_rev" if revocation_check else "ours", instance_path=tempfile.mkdtemp())
    app.config.update(
        COCART_JWT_SECRET_KEY=SECRET,
        COCART_JWT_REVOCATION_CHECK=revocation_check,
        COCART_JWT_RATELIMIT_ENABLED=False,
    )
    ext = CoCartJWT(app)

    @app.get("/data")
    @jwt_required
    def data() -> Any:
        return jsonify(ok=True)

    with app.test_request_context():
        pair = ext.issue_tokens("alice")
    return app, {"Authorization": f"Bearer {pair.access_token}"}


CASES: dict[str, Callable[[], tuple[Flask, dict[str, str]]]] = {
    "bare Flask": _bare,
    "Flask-JWT-Extended": lambda: _fje(False),
    "Flask-JWT-Extended + DB blocklist": lambda: _fje(True),
    "CoCart-JWT, revocation check off": lambda: _ours(False),
    "CoCart-JWT, revocation check on": lambda: _ours(True),
}


def prepare(name: str) -> Callable[[], Any]:
    """Build case ``name`` and return one request through its test client.

    The first request is checked (200) so that a broken case fails loudly
    instead of timing an error page.
    """
    app, headers = CASES[name]()
    client = app.test_client()
    response = client.get("/data", headers=headers)
    assert response.status_code == 200, (name, response.get_data())
    return lambda: client.get("/data", headers=headers)


def interleaved(
    calls: Mapping[str, Callable[[], Any]], rounds: int, requests: int
) -> dict[str, float]:
    """Median µs per call of each case, over ``rounds`` interleaved rounds.

    A case's figure is the median of its per-round means (see :func:`rounds_of`).
    """
    return {
        name: statistics.median(values)
        for name, values in rounds_of(calls, rounds, requests).items()
    }


def paired_overhead(samples: Mapping[str, list[float]], case: str, baseline: str) -> float:
    """Median over rounds of ``case`` minus ``baseline`` in the same round.

    Pairing within a round cancels what drifts between rounds (another job
    starting, the CPU clock changing), which a difference of two medians
    keeps.
    """
    return statistics.median(a - b for a, b in zip(samples[case], samples[baseline], strict=True))


def rounds_of(
    calls: Mapping[str, Callable[[], Any]], rounds: int, requests: int
) -> dict[str, list[float]]:
    """Mean µs per call of each case in each of ``rounds`` interleaved rounds.

    Each round runs every case once, in a shuffled order, with
    ``gc.collect()`` before each timed block of ``requests`` calls.
    """
    samples: dict[str, list[float]] = {name: [] for name in calls}
    order = list(calls)
    for _ in range(rounds):
        random.shuffle(order)
        for name in order:
            call = calls[name]
            gc.collect()
            start = time.perf_counter()
            for _ in range(requests):
                call()
            samples[name].append((time.perf_counter() - start) / requests * 1e6)
    return samples


def measure(rounds: int, requests: int) -> dict[str, float]:
    """Median µs per request of each case."""
    calls = {name: prepare(name) for name in CASES}
    for call in calls.values():  # warm up
        for _ in range(min(200, requests)):
            call()
    return interleaved(calls, rounds, requests)


def report(results: dict[str, float]) -> list[tuple[str, float, float]]:
    """Rows of (case, median µs, overhead µs over bare Flask)."""
    bare = results["bare Flask"]
    return [(name, us, us - bare) for name, us in results.items()]


def profile(name: str, requests: int, top: int = 15) -> None:
    """Print where the time of case ``name`` goes, by own time (cProfile).

    Twice: whole requests through the test client (so Werkzeug's request
    building shows), then the extension's check alone,
    ``verify_jwt_in_request()`` in one pushed request context, with its
    unprofiled time per call (best of 5).
    """
    import cProfile
    import pstats
    import timeit

    from flask_cocart_jwt import verify_jwt_in_request

    app, headers = CASES[name]()
    client = app.test_client()
    for _ in range(200):
        client.get("/data", headers=headers)
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(requests):
        client.get("/data", headers=headers)
    profiler.disable()
    print(f"== {name}: {requests} whole requests (test client); times are totals")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(top)
    if not name.startswith("CoCart"):
        return
    with app.test_request_context("/data", headers=headers):
        best = min(timeit.repeat(verify_jwt_in_request, number=requests, repeat=5))
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(requests):
            verify_jwt_in_request()
        profiler.disable()
    print(f"== verify_jwt_in_request() alone: {best / requests * 1e6:.1f} µs per call unprofiled")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(top)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument(
        "--profile",
        metavar="CASE",
        choices=list(CASES),
        help="instead of timing, profile one case with cProfile (--requests requests)",
    )
    args = parser.parse_args()
    if args.profile:
        profile(args.profile, args.requests)
        return
    rows = report(measure(args.rounds, args.requests))
    overhead = {name: extra for name, _, extra in rows}
    print(f"{'case':40} {'µs/request':>11} {'overhead µs':>12}")
    for name, us, extra in rows:
        print(f"{name:40} {us:11.1f} {extra:12.1f}")
    ours = overhead["CoCart-JWT, revocation check off"]
    ours_rev = overhead["CoCart-JWT, revocation check on"]
    print(f"overhead ratio vs FJE:               {ours / overhead['Flask-JWT-Extended']:.3f}")
    print(
        "overhead ratio (rev. on) vs FJE + DB: "
        f"{ours_rev / overhead['Flask-JWT-Extended + DB blocklist']:.3f}"
    )


if __name__ == "__main__":
    main()

"""Protected-route overhead: bare Flask, Flask-JWT-Extended, Flask-CoCart-JWT, timed.

Run by hand (never in the test suite)::

    .venv/bin/python -m benchmarks.protected [--rounds 15] [--requests 400]
    .venv/bin/python -m benchmarks.protected \
        --profile "documented: CoCart-JWT(db=db), revocation check on" --requests 20000

The cases are those of :mod:`benchmarks.cases` (the documented setup, the
minimal one, and an unprotected route with and without the extension). All
run in one process, in interleaved rounds (in a shuffled order,
``gc.collect()`` before each timed block), through Flask's test client. A
case's figure is the median of its per-round means; its *overhead* is the
median over rounds of its time minus its baseline's time in the same round
(:func:`paired_overhead`). ``interleaved`` and ``rounds_of`` are also used by
``benchmarks/run.py``. The last lines time ``get_jwt_identity()`` and
``get_jwt()`` inside a request whose token was verified.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import time
from collections.abc import Callable, Mapping
from typing import Any

from benchmarks.cases import (
    BASELINES,
    CASES,
    DOC_FJE,
    DOC_FJE_DB,
    DOC_OURS,
    DOC_OURS_REV,
    FJE,
    FJE_DB,
    OPEN_WITH,
    OPEN_WITHOUT,
    OURS,
    OURS_REV,
    SECRET,
    prepare,
)

__all__ = ["CASES", "SECRET", "interleaved", "paired_overhead", "prepare", "rounds_of"]


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


def measure(rounds: int, requests: int) -> dict[str, list[float]]:
    """µs per request of each case in each round (see :func:`rounds_of`)."""
    calls = {name: prepare(name) for name in CASES}
    for call in calls.values():  # warm up
        for _ in range(min(200, requests)):
            call()
    return rounds_of(calls, rounds, requests)


def overheads(samples: Mapping[str, list[float]]) -> dict[str, float]:
    """Each case's paired overhead over its baseline (``cases.BASELINES``)."""
    return {name: paired_overhead(samples, name, BASELINES[name]) for name in samples}


def accessors_us(number: int = 100_000) -> dict[str, float]:
    """µs per call of ``get_jwt_identity()`` and ``get_jwt()`` after the check.

    In one request of the documented setup (revocation check on) whose token
    was verified; best of 7 blocks of ``number`` calls.
    """
    import timeit

    from flask_cocart_jwt import get_jwt, get_jwt_identity, verify_jwt_in_request

    app, headers = CASES[DOC_OURS_REV]()
    with app.test_request_context("/data", headers=headers):
        verify_jwt_in_request()
        return {
            name: min(timeit.repeat(helper, number=number, repeat=7)) / number * 1e6
            for name, helper in (("get_jwt_identity()", get_jwt_identity), ("get_jwt()", get_jwt))
        }


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
    if "CoCart" not in name:
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


def ratios(over: Mapping[str, float]) -> dict[str, float]:
    """The ratios of the targets, from each case's overhead over its baseline."""
    return {
        "documented, ours / FJE": over[DOC_OURS] / over[DOC_FJE],
        "documented, ours (revocation on) / FJE + DB blocklist": over[DOC_OURS_REV]
        / over[DOC_FJE_DB],
        "minimal, ours / FJE": over[OURS] / over[FJE],
        "minimal, ours (revocation on) / FJE + DB blocklist": over[OURS_REV] / over[FJE_DB],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
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
    samples = measure(args.rounds, args.requests)
    over = overheads(samples)
    print(f"{'case':55} {'µs/request':>11} {'overhead µs':>12}")
    for name, values in samples.items():
        print(f"{name:55} {statistics.median(values):11.1f} {over[name]:12.1f}")
    open_cost = over[OPEN_WITH] / statistics.median(samples[OPEN_WITHOUT])
    print(f"{'unprotected route, extra cost with the extension':55} {open_cost:+11.1%}")
    for label, ratio in ratios(over).items():
        print(f"overhead ratio {label:60} {ratio:.3f}")
    for label, us in accessors_us().items():
        print(f"{label + ' after the check':55} {us:11.3f} µs")


if __name__ == "__main__":
    main()

"""Protected-route overhead counted in CPU instructions, with callgrind.

Timings on a shared two-core machine drift by tens of percent between runs;
instruction counts hardly do: ``valgrind --tool=callgrind`` counts nearly the
same total for the same program and inputs whatever else the machine is
doing. So this measures the cases of ``benchmarks/cases.py`` (the documented
setup, the minimal one, an unprotected route with and without the extension)
as instructions per request: each case runs in a child process under
callgrind twice, with a short (:data:`BASE_REQUESTS`) and a long run of
requests through Flask's test client, and the difference divided by the
difference in requests cancels start-up and imports. The counts still vary by
a few thousand instructions from run to run (hash seeds are fixed, but
addresses and the garbage collector's timing are not), so each case is
measured ``--repeat`` times and the median is kept. The revocation view's
background poll (every 0.5 s of wall time, which under callgrind would be
counted per slowed-down request) is kept out of the counts; the timed
benchmark includes it. Instructions are not time
(a cache miss costs no instruction), so this complements the timed ratio, it
does not replace it. Run by hand::

    .venv/bin/python -m benchmarks.instructions [--requests 200] [--repeat 3] \
        [--case NAME ...]

Needs ``valgrind`` on ``PATH``; ``benchmarks/run.py`` skips this section
with a note without it.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

from benchmarks.cases import BASELINES, CASES, prepare

#: Requests of the short run, which warms up the case as well.
BASE_REQUESTS = 50
_COLLECTED = re.compile(r"Collected\s*:\s*(\d+)")


def available() -> bool:
    """Whether callgrind can be run here."""
    return shutil.which("valgrind") is not None


def _count(case: str, requests: int) -> int:
    """Instructions of a child process that runs ``requests`` requests of ``case``."""
    env = dict(os.environ, PYTHONHASHSEED="0")
    command = [
        "valgrind",
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        sys.executable,
        "-m",
        "benchmarks.instructions",
        "--child",
        case,
        str(requests),
    ]
    done = subprocess.run(  # noqa: S603 - fixed command line, our own module
        command, capture_output=True, text=True, env=env, check=True
    )
    match = _COLLECTED.search(done.stderr)
    if match is None:
        raise RuntimeError(f"no instruction count from callgrind:\n{done.stderr[-2000:]}")
    return int(match.group(1))


def per_request(
    requests: int, repeat: int = 3, cases: Iterable[str] | None = None, workers: int = 2
) -> dict[str, float]:
    """Median instructions per request of each case (default: all of ``cases.CASES``).

    :param requests: how many more requests the long run makes than the short.
    :param repeat: measurements of each case; the median is kept.
    """
    names = list(CASES if cases is None else cases)
    sizes = (BASE_REQUESTS, BASE_REQUESTS + requests)
    runs = [(case, n, i) for i in range(repeat) for case in names for n in sizes]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        counts = dict(zip(runs, pool.map(lambda run: _count(run[0], run[1]), runs), strict=True))
    return {
        case: statistics.median(
            (counts[case, sizes[1], i] - counts[case, sizes[0], i]) / requests
            for i in range(repeat)
        )
        for case in names
    }


def _child(case: str, requests: int) -> None:
    from flask_cocart_jwt.revocation import RevocationView

    # The revocation view polls the database every 0.5 s of wall time, not
    # per request. Under callgrind a request takes some fifty times longer,
    # so the polls (and, without them, the reads a stale view makes on the
    # request path) would be counted fifty times too often, and more on a
    # busier machine. One load at the start, then none: what is counted is
    # the work of the requests; the polls' own cost is in the timed figures.
    RevocationView.poll_interval = RevocationView.max_staleness = 3600.0
    call = prepare(case)
    for _ in range(requests):
        call()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--case", action="append", choices=list(CASES), help="repeatable")
    parser.add_argument("--child", nargs=2, metavar=("CASE", "REQUESTS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child[0], int(args.child[1]))
        return
    if not available():
        sys.exit("valgrind is not installed (apt install valgrind)")
    wanted = args.case or list(CASES)
    names = list(dict.fromkeys([*wanted, *(BASELINES[name] for name in wanted)]))
    counts = per_request(args.requests, args.repeat, names)
    for case in wanted:
        count = counts[case]
        extra = count - counts[BASELINES[case]]
        print(f"{case:55} {count:12,.0f} instructions/request, overhead {extra:12,.0f}")


if __name__ == "__main__":
    main()

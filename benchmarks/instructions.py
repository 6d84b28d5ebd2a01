"""Protected-route overhead counted in CPU instructions, with callgrind.

Timings on a shared two-core machine drift by tens of percent between runs;
instruction counts do not: ``valgrind --tool=callgrind`` counts the same
total for the same program and inputs whatever else the machine is doing. So
this measures the same five cases as ``benchmarks/protected.py`` (bare Flask,
Flask-JWT-Extended with and without a DB blocklist, Flask-CoCart-JWT with the
revocation check off and on) as instructions per request: each case runs in a
child process under callgrind twice, with a short and a long run of requests
through Flask's test client, and the difference divided by the difference in
requests cancels start-up and imports. Instructions are not time (a cache
miss costs no instruction), so this complements the timed ratio, it does not
replace it. Run by hand::

    .venv/bin/python -m benchmarks.instructions [--requests 400]

Needs ``valgrind`` on ``PATH``; ``benchmarks/run.py`` skips this section
with a note without it.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

from benchmarks import protected

#: Requests of the short run, which warms up the case as well.
BASE_REQUESTS = 100
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


def per_request(requests: int, workers: int = 2) -> dict[str, float]:
    """Instructions per request of each case of ``benchmarks.protected.CASES``."""
    sizes = (BASE_REQUESTS, BASE_REQUESTS + requests)
    runs = [(case, n) for case in protected.CASES for n in sizes]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        counts = dict(zip(runs, pool.map(lambda run: _count(*run), runs), strict=True))
    return {
        case: (counts[case, BASE_REQUESTS + requests] - counts[case, BASE_REQUESTS]) / requests
        for case in protected.CASES
    }


def _child(case: str, requests: int) -> None:
    call = protected.prepare(case)
    for _ in range(requests):
        call()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--child", nargs=2, metavar=("CASE", "REQUESTS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child[0], int(args.child[1]))
        return
    if not available():
        sys.exit("valgrind is not installed (apt install valgrind)")
    counts = per_request(args.requests)
    bare = counts["bare Flask"]
    for case, count in counts.items():
        print(f"{case:40} {count:12,.0f} instructions/request, overhead {count - bare:12,.0f}")


if __name__ == "__main__":
    main()

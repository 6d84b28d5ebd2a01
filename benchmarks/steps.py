"""Where the access-token check spends its time, step by step, hot and cold.

Run by hand::

    .venv/bin/python -m benchmarks.steps [--calls 20000]

Prints four views of the protected route of the documented setup
(``benchmarks/cases.py``: ``CoCartJWT(db=db)``, revocation check on, a view
that returns ``get_jwt_identity()``):

1. each step of the check called in a tight loop (best of 7, µs per call),
   when every cache is warm: the floor of each step;
2. the whole check, ``verify_jwt_in_request()``, timed inside real requests
   through the test client: what it costs when the rest of a Flask request
   runs between two checks;
3. whole requests to an unprotected route of the same app and to the
   protected one (best of 5 blocks): the overhead a client sees;
4. the Python functions a protected request calls beyond those of the same
   request to the app without authentication (cProfile call counts, which
   do not vary from run to run): what runs, and how often.

The gap between 1 and 3 is the cold-cache cost of running the check once per
request among Werkzeug's and Flask's own code.
"""

from __future__ import annotations

import argparse
import statistics
import time
import timeit
from collections.abc import Callable
from typing import Any

from flask import jsonify

from benchmarks import cases
from flask_cocart_jwt import context, get_jwt, get_jwt_identity, tokens, transport

CASE = cases.DOC_OURS_REV


def best_us(call: Callable[[], Any], number: int, repeat: int = 7) -> float:
    """Best µs per call of ``call`` over ``repeat`` blocks of ``number`` calls."""
    return min(timeit.repeat(call, number=number, repeat=repeat)) / number * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--calls", type=int, default=20000)
    n = parser.parse_args().calls
    app, headers = cases.CASES[CASE]()
    token = headers["Authorization"].split()[1]
    header_b64, payload_b64, signature_b64 = token.split(".")
    signing_input = f"{header_b64}.{payload_b64}".encode("ascii")
    payload = tokens._b64decode(payload_b64)
    in_request: list[int] = []

    @app.get("/open")
    def open_route() -> Any:
        return jsonify(ok=True)

    @app.get("/timed")
    def timed_route() -> Any:
        start = time.perf_counter_ns()
        context.verify_jwt_in_request()
        in_request.append(time.perf_counter_ns() - start)
        return jsonify(ok=True)

    with app.test_request_context("/data", headers=headers):
        service = app.extensions["cocart_jwt"].get_service(app)
        settings = service.settings
        view = service.revocations
        assert view is not None
        context.verify_jwt_in_request()
        key = settings.keyring.known_headers[header_b64]
        now = time.time()
        steps: dict[str, Callable[[], Any]] = {
            "read the header (access_token_from_request)": lambda: (
                transport.access_token_from_request(settings)
            ),
            "shape check (regex)": lambda: tokens._TOKEN_SHAPE.fullmatch(token),
            "HMAC-SHA256 and compare (verify_encoded)": lambda: key.verify_encoded(
                signing_input, signature_b64
            ),
            "payload base64 (_b64decode)": lambda: tokens._b64decode(payload_b64),
            "payload JSON (_json_object)": lambda: tokens._json_object(payload),
            "whole decode_access_token": lambda: tokens.decode_access_token(token, settings, now),
            "revocation look-up (is_revoked)": lambda: view.is_revoked("no-such-session"),
            "whole verify_jwt_in_request": context.verify_jwt_in_request,
            "get_jwt_identity() after the check": get_jwt_identity,
            "get_jwt() after the check": get_jwt,
        }
        print(f"1. each step in a tight loop, best of 7 x {n} (µs per call)")
        for label, call in steps.items():
            print(f"   {label:46} {best_us(call, n):6.2f}")

    client = app.test_client()
    requests = max(2000, n // 5)
    for _ in range(requests):
        client.get("/timed", headers=headers)
    print(f"2. verify_jwt_in_request() inside {requests} requests (median, µs)")
    print(f"   {'once per request':46} {statistics.median(in_request) / 1000:6.2f}")
    print("3. whole requests through the test client, best of 5 (µs per request)")
    block = max(1000, n // 10)
    routes = {"unprotected route": "/open", "protected route (@jwt_required)": "/data"}
    times = {
        label: best_us(lambda path=path: client.get(path, headers=headers), block, repeat=5)
        for label, path in routes.items()
    }
    for label, us in times.items():
        print(f"   {label:46} {us:6.1f}")
    overhead = times["protected route (@jwt_required)"] - times["unprotected route"]
    print(f"   {'overhead of the check':46} {overhead:6.1f}")
    print("4. Python calls per request beyond the app without authentication")
    extra = extra_calls(CASE)
    print(f"   {'in all':46} {sum(extra.values()):6.0f}")
    for name, count in sorted(extra.items(), key=lambda item: -item[1]):
        print(f"   {count:+5.0f} {name}")


def calls_per_request(name: str, requests: int = 200) -> dict[str, float]:
    """Python (and builtin) calls per request of case ``name``, by function."""
    import cProfile
    import pstats

    call = cases.prepare(name)
    for _ in range(50):
        call()
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(requests):
        call()
    profiler.disable()
    counts: dict[str, float] = {}
    for (path, line, function), row in pstats.Stats(profiler).stats.items():  # type: ignore[attr-defined]
        where = path.rpartition("site-packages/")[2].rpartition("flask_cocart_jwt/")
        label = f"{where[1]}{where[2]}:{line}({function})" if path != "~" else function
        counts[label] = counts.get(label, 0.0) + row[1] / requests
    return counts


def extra_calls(name: str) -> dict[str, float]:
    """The calls of case ``name`` beyond its baseline's, by function (non-zero only)."""
    ours, base = calls_per_request(name), calls_per_request(cases.BASELINES[name])
    extra = {key: ours.get(key, 0.0) - base.get(key, 0.0) for key in ours.keys() | base.keys()}
    return {key: round(value) for key, value in extra.items() if round(value)}


if __name__ == "__main__":
    main()

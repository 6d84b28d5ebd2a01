"""Per-request cost of the rate limits, against raw Flask-Limiter.

Measures the median time of ``POST /auth/validate-token`` with the
extension's limits (per IP and per token, moving window) minus the same
request with limits disabled, on the memory and the Redis storage; and the
same for Flask-Limiter with the same two limits on a bare route.

The requests come from :data:`CLIENTS` clients in turn, each with its own
address and token, as on a real API: a moving window keeps one entry per
request in the window, and its read walks that list, so a single client
sending every request under a huge limit would measure Redis walking a list of
thousands of entries rather than the limiter. :data:`LIMIT` is far above what
one client sends in a run, so no request is refused. Run it as a module, so
that this file does not shadow the ``limits`` package::

    .venv/bin/python -m benchmarks.ratelimits [--requests 3000] [--redis redis://127.0.0.1:6379/0]

The case builders (``build_ours``, ``build_flask_limiter``) are also used by
``benchmarks/run.py``, which interleaves them with the other benchmarks.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from typing import Any

from flask import Flask, jsonify, request

from flask_cocart_jwt import CoCartJWT

SECRET = "benchmark-secret-0123456789-abcdefghijklmnopqrstuvwxyz"
#: Per IP and per token; a client sends a few hundred requests a minute at most.
LIMIT = "1000 per minute"
#: Clients taking turns, each with its own address and access token.
CLIENTS = 256


def addresses() -> list[dict[str, str]]:
    """One WSGI ``environ_base`` per client, each with its own ``REMOTE_ADDR``."""
    return [{"REMOTE_ADDR": f"10.0.{i // 250}.{i % 250 + 1}"} for i in range(CLIENTS)]


def median_us(call: Callable[[], Any], n: int) -> float:
    for _ in range(min(200, n)):
        call()
    times = []
    for _ in range(n):
        start = time.perf_counter_ns()
        response = call()
        times.append(time.perf_counter_ns() - start)
        assert response.status_code == 200, response.get_data()
    return statistics.median(times) / 1000


def build_ours(storage: str | None, prefix: str) -> Callable[[], Any]:
    """One ``POST validate-token`` with our limits on ``storage`` (``None``: off)."""
    app = Flask("bench_ours", instance_path=tempfile.mkdtemp())
    app.config.update(
        COCART_JWT_SECRET_KEY=SECRET,
        COCART_JWT_DATABASE_URI="sqlite://",
        COCART_JWT_URL_PREFIX=prefix,
        COCART_JWT_RATELIMIT_ENABLED=storage is not None,
        COCART_JWT_RATELIMIT_STORAGE_URI=storage or "memory://",
        COCART_JWT_LIMIT_VALIDATE_PER_IP=LIMIT,
        COCART_JWT_LIMIT_VALIDATE_PER_TOKEN=LIMIT,
    )
    ext = CoCartJWT(app)
    with app.app_context():
        tokens = [ext.issue_tokens(f"user{i}").access_token for i in range(CLIENTS)]
    client = app.test_client()
    turns = itertools.cycle(
        [
            ({"Authorization": f"Bearer {token}"}, environ)
            for token, environ in zip(tokens, addresses(), strict=True)
        ]
    )

    def call() -> Any:
        headers, environ = next(turns)
        return client.post(f"{prefix}/validate-token", headers=headers, environ_base=environ)

    return _checked(call)


def build_flask_limiter(storage: str | None) -> Callable[[], Any]:
    """One ``POST`` to a bare route under raw Flask-Limiter's two limits (``None``: none)."""
    from flask_limiter import Limiter
    from flask_limiter.util import get_remote_address

    app = Flask("bench_raw")

    def view() -> Any:
        return jsonify(valid=True)

    if storage is not None:
        limiter = Limiter(
            get_remote_address,
            app=app,
            storage_uri=storage,
            strategy="moving-window",
            headers_enabled=True,
            key_prefix=uuid.uuid4().hex,
        )
        per_token = limiter.limit(LIMIT, key_func=lambda: request.headers.get("Authorization", ""))
        view = per_token(limiter.limit(LIMIT)(view))
    app.add_url_rule("/validate", view_func=view, methods=["POST"])
    client = app.test_client()
    turns = itertools.cycle(
        [
            ({"Authorization": f"Bearer {i:04d}" + "x" * 200}, environ)
            for i, environ in enumerate(addresses())
        ]
    )

    def call() -> Any:
        headers, environ = next(turns)
        return client.post("/validate", headers=headers, environ_base=environ)

    return _checked(call)


def _checked(call: Callable[[], Any]) -> Callable[[], Any]:
    """``call``, after checking that it answers 200 (a broken case fails loudly)."""
    response = call()
    assert response.status_code == 200, response.get_data()
    return call


def ours(n: int, storage: str | None, prefix: str) -> float:
    return median_us(build_ours(storage, prefix), n)


def flask_limiter(n: int, storage: str | None) -> float:
    return median_us(build_flask_limiter(storage), n)


def cleanup(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    for pattern in (f"LIMITS:LIMITER/cocart_jwt/{prefix}/*",):
        keys = list(client.scan_iter(match=pattern))
        if keys:
            client.delete(*keys)
    client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    n = args.requests
    prefix = f"/bench-{uuid.uuid4().hex[:8]}"
    base = ours(n, None, prefix)
    raw_base = flask_limiter(n, None)
    print(f"validate-token, limits off: {base:8.1f} us   bare route: {raw_base:8.1f} us")
    print(f"{'storage':10} {'ours +us':>10} {'Flask-Limiter +us':>18}")
    for name, uri in (("memory", "memory://"), ("redis", args.redis)):
        try:
            mine = ours(n, uri, prefix) - base
            theirs = flask_limiter(n, uri) - raw_base
        except Exception as exc:  # e.g. Redis not running
            print(f"{name:10} skipped: {type(exc).__name__}: {exc}")
            continue
        finally:
            if uri.startswith("redis"):
                cleanup(uri, prefix)
        print(f"{name:10} {mine:10.1f} {theirs:18.1f}")


if __name__ == "__main__":
    main()

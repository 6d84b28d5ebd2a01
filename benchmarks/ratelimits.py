"""Per-request cost of the rate limits, against raw Flask-Limiter.

Measures the median time of ``POST /auth/validate-token`` with the
extension's limits (per IP and per token, moving window) minus the same
request with limits disabled, on the memory and the Redis storage; and the
same for Flask-Limiter with the same two limits on a bare route. Limits are
set high enough never to trip. Run it as a module, so that this file does not
shadow the ``limits`` package::

    .venv/bin/python -m benchmarks.ratelimits [--requests 3000] [--redis redis://127.0.0.1:6379/0]

The case builders (``build_ours``, ``build_flask_limiter``) are also used by
``benchmarks/run.py``, which interleaves them with the other benchmarks.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from typing import Any

from flask import Flask, jsonify, request

from flask_cocart_jwt import CoCartJWT

SECRET = "benchmark-secret-0123456789-abcdefghijklmnopqrstuvwxyz"
HIGH = "1000000 per minute"


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
        COCART_JWT_LIMIT_VALIDATE_PER_IP=HIGH,
        COCART_JWT_LIMIT_VALIDATE_PER_TOKEN=HIGH,
    )
    ext = CoCartJWT(app)
    ext.register_credentials_checker(lambda u, p: u)
    client = app.test_client()
    login = client.post(f"{prefix}/login", json={"username": "alice", "password": "x"})
    headers = {"Authorization": f"Bearer {login.json['access_token']}"}  # type: ignore[index]
    return _checked(lambda: client.post(f"{prefix}/validate-token", headers=headers))


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
        per_token = limiter.limit(HIGH, key_func=lambda: request.headers.get("Authorization", ""))
        view = per_token(limiter.limit(HIGH)(view))
    app.add_url_rule("/validate", view_func=view, methods=["POST"])
    client = app.test_client()
    headers = {"Authorization": "Bearer x" * 30}
    return _checked(lambda: client.post("/validate", headers=headers))


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

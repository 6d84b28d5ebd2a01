"""Protected-route overhead: bare Flask, Flask-JWT-Extended, Flask-CoCart-JWT.

Run by hand (never in the test suite)::

    .venv/bin/python -m benchmarks.protected [--rounds 15] [--requests 400]

All cases run in one process, in interleaved rounds, through Flask's test
client; the figures are medians of the per-request time of each round.
Auth overhead is a case's time minus bare Flask's.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
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


def measure(rounds: int, requests: int) -> dict[str, float]:
    """Median µs per request of each case."""
    clients = {}
    for name, build in CASES.items():
        app, headers = build()
        client = app.test_client()
        response = client.get("/data", headers=headers)
        assert response.status_code == 200, (name, response.get_data())
        clients[name] = (client, headers)
    samples: dict[str, list[float]] = {name: [] for name in CASES}
    for _ in range(rounds):
        for name, (client, headers) in clients.items():
            start = time.perf_counter()
            for _ in range(requests):
                client.get("/data", headers=headers)
            samples[name].append((time.perf_counter() - start) / requests * 1e6)
    return {name: statistics.median(values) for name, values in samples.items()}


def report(results: dict[str, float]) -> list[tuple[str, float, float]]:
    """Rows of (case, median µs, overhead µs over bare Flask)."""
    bare = results["bare Flask"]
    return [(name, us, us - bare) for name, us in results.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--requests", type=int, default=400)
    args = parser.parse_args()
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

"""Cost of the access-token revocation check per protected request.

Runs a protected view through Flask's test client with
``COCART_JWT_REVOCATION_CHECK`` on and off, and prints the median time per
request in microseconds::

    python benchmarks/revocation_check.py [--requests 5000] [--rounds 5]

The check is an in-process set lookup kept fresh by a background thread, so
the difference should be a few microseconds, whatever the database.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import timeit
from typing import Any

from flask import Flask, jsonify

from flask_cocart_jwt import CoCartJWT, get_jwt_identity, jwt_required

SECRET = "benchmark-secret-0123456789-abcdefghijklmnopqrstuvwxyz"


class User:
    def __init__(self, id: str) -> None:
        self.id = id


def create_app(check: bool, directory: str) -> Flask:
    app = Flask(f"bench_{check}", instance_path=directory)
    app.config.update(
        COCART_JWT_SECRET_KEY=SECRET,
        COCART_JWT_DATABASE_URI=f"sqlite:///{directory}/tokens-{check}.sqlite3",
        COCART_JWT_REVOCATION_CHECK=check,
        COCART_JWT_RATELIMIT_ENABLED=False,
    )
    ext = CoCartJWT()
    ext.credentials_checker(lambda username, password: User(username))
    ext.init_app(app)

    @app.get("/me")
    @jwt_required
    def me() -> Any:
        return jsonify(identity=get_jwt_identity())

    return app


def per_request_us(app: Flask, requests: int) -> list[float]:
    client = app.test_client()
    login = client.post("/auth/login", json={"username": "alice", "password": "x"})
    headers = {"Authorization": f"Bearer {login.json['access_token']}"}  # type: ignore[index]
    # Some revoked sessions, so the lookup is not in an empty set.
    ext: CoCartJWT = app.extensions["cocart_jwt"]
    with app.test_request_context():
        for _ in range(200):
            ext.revoke_session(ext.issue_tokens(User("bob")).session_id, "bench")
    for _ in range(200):  # warm up (and start the revocation poller)
        assert client.get("/me", headers=headers).status_code == 200
    timings = []
    for _ in range(requests):
        start = time.perf_counter_ns()
        response = client.get("/me", headers=headers)
        timings.append((time.perf_counter_ns() - start) / 1000)
        assert response.status_code == 200
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        apps = {check: create_app(check, directory) for check in (True, False)}
        medians: dict[bool, list[float]] = {True: [], False: []}
        for _ in range(args.rounds):  # interleaved, so drift hits both alike
            for check, app in apps.items():
                medians[check].append(statistics.median(per_request_us(app, args.requests)))
        on, off = statistics.median(medians[True]), statistics.median(medians[False])
        # The check alone, without the noise of a whole request.
        view = apps[True].extensions["cocart_jwt"].get_service(apps[True]).revocations
        lookup = min(timeit.repeat(lambda: view.is_revoked("no-such-session"), number=100_000))
    print(f"requests per round: {args.requests}, rounds: {args.rounds}")
    print(f"revocation check on : {on:8.1f} us per request (median of round medians)")
    print(f"revocation check off: {off:8.1f} us per request")
    print(f"cost of the check   : {on - off:8.1f} us per request (difference of medians)")
    print(f"is_revoked() alone  : {lookup * 10:8.2f} us per call (best of 5 x 100000)")


if __name__ == "__main__":
    main()

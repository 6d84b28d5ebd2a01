"""What DPoP costs a protected request, and where the time goes.

Run by hand (never in the test suite)::

    .venv/bin/python -m benchmarks.dpop [--rounds 15] [--requests 300]

Two parts:

1. whole requests to a protected route through Flask's test client, in
   interleaved rounds (``benchmarks.protected.rounds_of``; medians of the
   per-round means): a Bearer token with DPoP off, a Bearer token with DPoP
   on (``"optional"``, an unbound token), and bound tokens with ES256 and
   EdDSA proofs. Every DPoP request has a proof of its own (a new ``jti``),
   made before the clock starts: the client's signing is not counted;
2. the steps of one proof check, each in a tight loop (best of 7, µs per
   call), on the same libraries the check uses: parsing, loading the key
   (PyJWT's ``PyJWK`` and ``prepare_key``), the signature, the RFC 7638
   thumbprint, the replay cache (in memory), and ``ProofChecker.check``
   whole.

The revocation check and the rate limits are off in every case, so that the
differences are DPoP's alone (the replay cache is counted in memory; on Redis
add one round trip, see ``benchmarks/ratelimits.py``).
"""

from __future__ import annotations

import argparse
import itertools
import secrets
import statistics
import tempfile
import time
import timeit
from collections.abc import Callable, Iterator
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from flask import Flask, jsonify

from benchmarks.protected import SECRET, rounds_of

URL = "http://localhost/data"


def _app(dpop: str) -> Any:
    from flask_cocart_jwt import CoCartJWT, jwt_required

    app = Flask(f"dpop_{dpop}", instance_path=tempfile.mkdtemp())
    app.config.update(
        COCART_JWT_SECRET_KEY=SECRET,
        COCART_JWT_REVOCATION_CHECK=False,
        COCART_JWT_RATELIMIT_ENABLED=False,
        COCART_JWT_DPOP=dpop,
    )
    ext = CoCartJWT(app)

    @app.get("/data")
    @jwt_required
    def data() -> Any:
        return jsonify(ok=True)

    return app, ext


class Client:
    """A DPoP client key and its proofs."""

    def __init__(self, algorithm: str) -> None:
        self.algorithm = algorithm
        if algorithm == "ES256":
            self.key: Any = ec.generate_private_key(ec.SECP256R1())
        else:
            self.key = ed25519.Ed25519PrivateKey.generate()
        jwk = jwt.algorithms.get_default_algorithms()[algorithm].to_jwk(
            self.key.public_key(), as_dict=True
        )
        jwk.pop("key_ops", None)
        self.jwk = jwk

    def proof(self, method: str, url: str, access_token: str | None = None) -> str:
        claims: dict[str, Any] = {
            "jti": secrets.token_urlsafe(16),
            "htm": method,
            "htu": url,
            "iat": int(time.time()),
        }
        if access_token is not None:
            from flask_cocart_jwt.dpop import access_token_hash

            claims["ath"] = access_token_hash(access_token)
        return jwt.encode(
            claims, self.key, self.algorithm, headers={"typ": "dpop+jwt", "jwk": self.jwk}
        )


def bearer_case(dpop: str) -> Callable[[], Any]:
    app, ext = _app(dpop)
    with app.test_request_context():
        token = ext.issue_tokens("alice").access_token
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/data", headers=headers).status_code == 200
    return lambda: client.get("/data", headers=headers)


def dpop_case(algorithm: str, count: int) -> Callable[[], Any]:
    app, _ext = _app("optional")
    key = Client(algorithm)
    client = app.test_client()
    # A pair bound to the key: issue_tokens in a request that carries a proof.
    with app.test_request_context(
        "/issue", method="POST", headers={"DPoP": key.proof("POST", "http://localhost/issue")}
    ):
        pair = app.extensions["cocart_jwt"].issue_tokens("alice")
    token = pair.access_token
    authorization = f"DPoP {token}"
    proofs: Iterator[str] = iter([key.proof("GET", URL, token) for _ in range(count)])
    first = client.get("/data", headers={"Authorization": authorization, "DPoP": next(proofs)})
    assert first.status_code == 200, first.get_data()
    return lambda: client.get(
        "/data", headers={"Authorization": authorization, "DPoP": next(proofs)}
    )


def requests_part(rounds: int, requests: int) -> None:
    count = (rounds + 1) * requests + 10
    calls = {
        "Bearer, DPoP off": bearer_case("off"),
        "Bearer, DPoP optional": bearer_case("optional"),
        "DPoP, ES256 proof": dpop_case("ES256", count),
        "DPoP, EdDSA proof": dpop_case("EdDSA", count),
    }
    for call in calls.values():  # warm up
        for _ in range(requests):
            call()
    samples = rounds_of(calls, rounds, requests)
    base = "Bearer, DPoP off"
    print(f"whole requests ({rounds} rounds of {requests}), median µs per request:")
    for name, values in samples.items():
        paired = statistics.median(a - b for a, b in zip(values, samples[base], strict=True))
        print(f"  {name:24} {statistics.median(values):8.1f}   +{paired:7.1f} over {base}")


def best_us(call: Callable[[], Any], number: int, repeat: int = 7) -> float:
    return min(timeit.repeat(call, number=number, repeat=repeat)) / number * 1e6


def _steps(name: str, settings: Any, calls: int) -> dict[str, float]:
    """µs per call of each step of checking one proof signed with ``name``."""
    from jwt import PyJWK

    from flask_cocart_jwt.dpop import ProofChecker, access_token_hash, normalize_url
    from flask_cocart_jwt.dpop_settings import DPoPSettings
    from flask_cocart_jwt.keys import thumbprint
    from flask_cocart_jwt.limits import RateLimits
    from flask_cocart_jwt.replay import ReplayCache
    from flask_cocart_jwt.tokens import decode_segment, parse_object

    token = "x" * 300
    key = Client(name)
    proof = key.proof("GET", URL, token)
    header_b64, claims_b64, signature_b64 = proof.split(".")
    algorithm = jwt.algorithms.get_default_algorithms()[name]
    public = algorithm.prepare_key(PyJWK(key.jwk, algorithm=name).key)
    signing_input = proof[: len(header_b64) + 1 + len(claims_b64)].encode()
    signature = decode_segment(signature_b64)
    replay = ReplayCache(RateLimits(settings))
    counter = itertools.count()
    keyring = settings.keyring
    checker = ProofChecker(DPoPSettings("optional", (name,), 60, False, 0), keyring, replay)
    proofs = iter([key.proof("GET", URL, token) for _ in range(calls * 8)])
    rows: dict[str, Callable[[], Any]] = {
        "parse header and claims": lambda: (
            parse_object(decode_segment(header_b64)),
            parse_object(decode_segment(claims_b64)),
        ),
        "load the jwk (PyJWK, prepare_key)": lambda: algorithm.prepare_key(
            PyJWK(key.jwk, algorithm=name).key
        ),
        "verify the signature (same key object)": lambda: algorithm.verify(
            signing_input, public, signature
        ),
        "load and verify (a new key object)": lambda: algorithm.verify(
            signing_input, algorithm.prepare_key(PyJWK(key.jwk, algorithm=name).key), signature
        ),
        "RFC 7638 thumbprint": lambda: thumbprint(algorithm.to_jwk(public, as_dict=True)),
        "htu: normalise both URLs": lambda: (normalize_url(URL), normalize_url(URL)),
        "ath (SHA-256 of the token)": lambda: access_token_hash(token),
        "replay key (HMAC) and cache (memory)": lambda: replay.first_use(
            keyring.derive("dpop-jti", str(next(counter)).encode()).hex()[:32], 121
        ),
        "ProofChecker.check, whole": lambda: checker.check(
            next(proofs), method="GET", url=URL, now=time.time(), access_token=token
        ),
    }
    return {label: best_us(call, calls) for label, call in rows.items()}


def steps_part(calls: int) -> None:
    app, _ext = _app("optional")
    settings = app.extensions["cocart_jwt"].get_service(app).settings
    print(f"one proof check, step by step (best of 7, µs per call, {calls} calls):")
    with app.app_context():
        for name in ("ES256", "EdDSA"):
            print(f"  {name}:")
            for label, us in _steps(name, settings, calls).items():
                print(f"    {label:38} {us:7.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    requests_part(args.rounds, args.requests)
    steps_part(args.calls)


if __name__ == "__main__":
    main()

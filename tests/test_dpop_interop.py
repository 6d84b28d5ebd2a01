"""DPoP interop: proofs made by an independent JOSE library, jwcrypto.

Not the suite's own helper (PyJWT) nor the extension's code: jwcrypto makes
the keys, the JWK, the signature and the RFC 7638 thumbprint. Behind
``ProxyFix``, ``htu`` is the URL the client used, as forwarded.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from jwcrypto import jwk, jws
from werkzeug.middleware.proxy_fix import ProxyFix

from tests.conftest import NO_LIMITS
from tests.dpop_support import assert_dpop_error, ath

KEYS = {
    "ES256": {"kty": "EC", "crv": "P-256"},
    "ES384": {"kty": "EC", "crv": "P-384"},
    "EdDSA": {"kty": "OKP", "crv": "Ed25519"},
    "PS256": {"kty": "RSA", "size": 2048},
    "RS256": {"kty": "RSA", "size": 2048},
}


def jwcrypto_proof(
    key: jwk.JWK, alg: str, method: str, url: str, access_token: str | None = None
) -> str:
    claims: dict[str, Any] = {
        "jti": secrets.token_urlsafe(16),
        "htm": method,
        "htu": url,
        "iat": int(time.time()),
    }
    if access_token is not None:
        claims["ath"] = ath(access_token)
    token = jws.JWS(json.dumps(claims))
    header = {"typ": "dpop+jwt", "alg": alg, "jwk": key.export_public(as_dict=True)}
    token.add_signature(key, alg=alg, protected=json.dumps(header))
    return str(token.serialize(compact=True))


@pytest.mark.parametrize("alg", list(KEYS))
def test_proofs_made_by_jwcrypto(make_app: Callable[..., Flask], alg: str) -> None:
    algorithms = ["ES256", "ES384", "EdDSA", "PS256", "RS256"]
    app = make_app(COCART_JWT_DPOP="required", COCART_JWT_DPOP_ALGORITHMS=algorithms, **NO_LIMITS)
    key = jwk.JWK.generate(**KEYS[alg])
    client = app.test_client()
    login = client.post(
        "/auth/login",
        json={"username": "alice", "password": "wonderland"},
        headers={"DPoP": jwcrypto_proof(key, alg, "POST", "http://localhost/auth/login")},
    )
    assert login.status_code == 200, login.json
    token = login.json["access_token"]
    me = client.get(
        "/me",
        headers={
            "Authorization": f"DPoP {token}",
            "DPoP": jwcrypto_proof(key, alg, "GET", "http://localhost/me", token),
        },
    )
    assert me.status_code == 200, me.json
    # jwcrypto's RFC 7638 thumbprint is the token's binding.
    assert me.json["claims"]["cnf"] == {"jkt": key.thumbprint()}
    refreshed = client.post(
        "/auth/refresh-token",
        json={"refresh_token": login.json["refresh_token"]},
        headers={"DPoP": jwcrypto_proof(key, alg, "POST", "http://localhost/auth/refresh-token")},
    )
    assert refreshed.status_code == 200, refreshed.json
    assert refreshed.json["token_type"] == "DPoP"


def test_htu_behind_proxyfix_is_the_forwarded_url(make_app: Callable[..., Flask]) -> None:
    app = make_app(COCART_JWT_DPOP="optional", **NO_LIMITS)
    app.wsgi_app = ProxyFix(app.wsgi_app, x_proto=1, x_host=1)  # type: ignore[method-assign]
    key = jwk.JWK.generate(kty="EC", crv="P-256")
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "api.shop.example"}
    client = app.test_client()
    public = "https://api.shop.example/auth/login"
    login = client.post(
        "/auth/login",
        json={"username": "alice", "password": "wonderland"},
        headers={**forwarded, "DPoP": jwcrypto_proof(key, "ES256", "POST", public)},
    )
    assert login.status_code == 200, login.json
    # The URL as the proxy received it is what counts; the inner one is refused.
    inner = client.post(
        "/auth/login",
        json={"username": "alice", "password": "wonderland"},
        headers={
            **forwarded,
            "DPoP": jwcrypto_proof(key, "ES256", "POST", "http://localhost/auth/login"),
        },
    )
    assert_dpop_error(inner)

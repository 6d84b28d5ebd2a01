"""``GET {prefix}/jwks.json``: the public keys as an RFC 7517 JWK Set."""

from __future__ import annotations

import base64
import json
import re
import secrets
import time
from collections.abc import Callable
from typing import Any

import jsonschema_rs
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from flask import Flask
from jwcrypto import jwk, jwt

from flask_cocart_jwt.openapi import openapi_document
from tests.conftest import AuthActions
from tests.security import pem_private, pem_public

#: RFC 7517/7518/8037: the public members of each key type, besides kid/alg/use.
PUBLIC_MEMBERS = {"RSA": {"n", "e"}, "EC": {"crv", "x", "y"}, "OKP": {"crv", "x"}}
#: Members that only a private or symmetric key has (RFC 7518 section 6).
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "r", "t", "k"}
_B64URL = re.compile(r"[A-Za-z0-9_-]+")


@pytest.fixture(scope="module")
def keys() -> dict[str, Any]:
    """Private keys generated once for the module (RSA 2048)."""
    return {
        "RS256": rsa.generate_private_key(65537, 2048),
        "RS256-old": rsa.generate_private_key(65537, 2048),
        "ES256": ec.generate_private_key(ec.SECP256R1()),
        "ES256-old": ec.generate_private_key(ec.SECP256R1()),
        "ES512": ec.generate_private_key(ec.SECP521R1()),
        "EdDSA": ed25519.Ed25519PrivateKey.generate(),
    }


ALGORITHMS = ["RS256", "ES256", "ES512", "EdDSA"]


def _jwks(app: Flask, path: str = "/auth/jwks.json") -> Any:
    return app.test_client().get(path)


def _assert_public_only(body: dict[str, Any]) -> None:
    assert set(body) == {"keys"}
    assert isinstance(body["keys"], list)
    for key in body["keys"]:
        assert not PRIVATE_MEMBERS & set(key), key
        assert set(key) == PUBLIC_MEMBERS[key["kty"]] | {"kty", "kid", "alg", "use"}, key
        assert key["use"] == "sig"
        assert isinstance(key["kid"], str)
        assert key["kid"]
        for member in PUBLIC_MEMBERS[key["kty"]] - {"crv"}:
            assert _B64URL.fullmatch(key[member]), (member, key[member])


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_current_key(make_app: Callable[..., Flask], keys: dict[str, Any], algorithm: str) -> None:
    app = make_app(
        COCART_JWT_ALGORITHM=algorithm, COCART_JWT_PRIVATE_KEY=pem_private(keys[algorithm])
    )
    response = _jwks(app)
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    _assert_public_only(response.json)
    (served,) = response.json["keys"]
    assert served["alg"] == algorithm
    # The served key is the public half of the configured key.
    expected = jwk.JWK.from_pem(pem_public(keys[algorithm])).export_public(as_dict=True)
    assert {k: v for k, v in served.items() if k in expected and k != "kid"} == {
        k: v for k, v in expected.items() if k != "kid"
    }
    # ... and it names the key of the tokens the app issues.
    token = AuthActions(app.test_client()).tokens()["access_token"]
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header["kid"] == served["kid"]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_private_material_never_served(
    make_app: Callable[..., Flask], keys: dict[str, Any], algorithm: str
) -> None:
    """Not even when a decode key is given as a private PEM."""
    app = make_app(
        COCART_JWT_ALGORITHM=algorithm,
        COCART_JWT_PRIVATE_KEY=pem_private(keys[algorithm]),
        COCART_JWT_DECODE_KEYS={"old-private": pem_private(keys["ES256-old"])}
        if algorithm == "ES256"
        else {},
    )
    response = _jwks(app)
    _assert_public_only(response.json)
    text = response.get_data(as_text=True)
    for name in ("RS256", "ES256", "ES256-old", "ES512", "EdDSA"):
        private = jwk.JWK.from_pem(pem_private(keys[name])).export_private(as_dict=True)
        for member in PRIVATE_MEMBERS & set(private):
            assert private[member] not in text, (name, member)


def test_current_and_decode_keys(make_app: Callable[..., Flask], keys: dict[str, Any]) -> None:
    """Key rotation: the old public keys stay listed under their kids."""
    app = make_app(
        COCART_JWT_ALGORITHM="RS256",
        COCART_JWT_PRIVATE_KEY=pem_private(keys["RS256"]),
        COCART_JWT_DECODE_KEYS={
            "rsa-2024": pem_public(keys["RS256-old"]),
            "ec-2023": {"algorithm": "ES256", "key": pem_public(keys["ES256-old"])},
            "ed-2022": {"algorithm": "EdDSA", "key": pem_private(keys["EdDSA"])},
            "hmac-2021": {"algorithm": "HS256", "key": secrets.token_urlsafe(48)},
        },
    )
    body = _jwks(app).json
    _assert_public_only(body)
    served = {key["kid"]: key for key in body["keys"]}
    current = jwk.JWK.from_pem(pem_public(keys["RS256"])).thumbprint()
    # A shared secret is never published; every public key is.
    assert set(served) == {current, "rsa-2024", "ec-2023", "ed-2022"}
    assert served[current]["alg"] == "RS256"
    assert served["rsa-2024"]["alg"] == "RS256"
    assert served["ec-2023"]["alg"] == "ES256"
    assert served["ec-2023"]["crv"] == "P-256"
    assert served["ed-2022"]["alg"] == "EdDSA"
    assert served["ed-2022"]["crv"] == "Ed25519"
    for kid, name in (("rsa-2024", "RS256-old"), ("ec-2023", "ES256-old"), ("ed-2022", "EdDSA")):
        expected = jwk.JWK.from_pem(pem_public(keys[name]))
        assert jwk.JWK(**served[kid]).thumbprint() == expected.thumbprint(), kid


def test_old_key_tokens_verify_with_the_served_set(
    make_app: Callable[..., Flask], keys: dict[str, Any]
) -> None:
    """A third party holding only the JWK Set verifies tokens of the old and new key."""
    app = make_app(
        COCART_JWT_ALGORITHM="ES256",
        COCART_JWT_PRIVATE_KEY=pem_private(keys["ES256"]),
        COCART_JWT_DECODE_KEYS={"es-old": pem_public(keys["ES256-old"])},
        COCART_JWT_RATELIMIT_ENABLED=False,
    )
    auth = AuthActions(app.test_client())
    keyset = jwk.JWKSet.from_json(_jwks(app).get_data(as_text=True))
    tokens = auth.tokens()
    jwt.JWT(jwt=tokens["access_token"], key=keyset, algs=["ES256"])

    now = int(time.time())
    old = jwt.JWT(
        header={"alg": "ES256", "typ": "at+jwt", "kid": "es-old"},
        claims={
            "sub": "alice",
            "iat": now,
            "nbf": now,
            "exp": now + 60,
            "jti": secrets.token_urlsafe(16),
            "sid": tokens["session_id"],
            "fresh": False,
        },
    )
    old.make_signed_token(jwk.JWK.from_pem(pem_private(keys["ES256-old"])))
    token = old.serialize()
    jwt.JWT(jwt=token, key=keyset, algs=["ES256"])
    assert auth.get("/me", token).status_code == 200


@pytest.mark.parametrize("algorithm", ["HS256", "HS384", "HS512"])
def test_empty_for_hmac(make_app: Callable[..., Flask], algorithm: str) -> None:
    secret = secrets.token_urlsafe(64)
    app = make_app(
        COCART_JWT_ALGORITHM=algorithm,
        COCART_JWT_SECRET_KEY=secret,
        COCART_JWT_DECODE_KEYS={"old": secrets.token_urlsafe(64)},
    )
    response = _jwks(app)
    assert response.status_code == 200
    assert response.json == {"keys": []}
    assert secret not in response.get_data(as_text=True)


def test_cache_headers(make_app: Callable[..., Flask], keys: dict[str, Any]) -> None:
    app = make_app(COCART_JWT_ALGORITHM="ES256", COCART_JWT_PRIVATE_KEY=pem_private(keys["ES256"]))
    response = _jwks(app)
    directives = [d.strip() for d in response.headers["Cache-Control"].split(",")]
    assert "public" in directives
    (max_age,) = [d for d in directives if d.startswith("max-age=")]
    assert int(max_age.removeprefix("max-age=")) > 0
    assert "no-store" not in directives
    assert "no-cache" not in response.headers.get("Pragma", "")
    # The token routes themselves are never cached.
    login = AuthActions(app.test_client()).login()
    assert login.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    ("prefix", "path"),
    [("/auth", "/auth/jwks.json"), ("/api/v1/auth", "/api/v1/auth/jwks.json"), ("", "/jwks.json")],
)
def test_served_under_the_url_prefix(
    make_app: Callable[..., Flask], keys: dict[str, Any], prefix: str, path: str
) -> None:
    app = make_app(
        COCART_JWT_ALGORITHM="EdDSA",
        COCART_JWT_PRIVATE_KEY=pem_private(keys["EdDSA"]),
        COCART_JWT_URL_PREFIX=prefix,
    )
    response = _jwks(app, path)
    assert response.status_code == 200
    assert len(response.json["keys"]) == 1
    if prefix != "/auth":
        assert _jwks(app, "/auth/jwks.json").status_code == 404


def test_public_without_credentials(make_app: Callable[..., Flask], keys: dict[str, Any]) -> None:
    """No token is needed, and a bad one is not looked at."""
    app = make_app(COCART_JWT_ALGORITHM="ES256", COCART_JWT_PRIVATE_KEY=pem_private(keys["ES256"]))
    client = app.test_client()
    plain = client.get("/auth/jwks.json")
    bad = client.get("/auth/jwks.json", headers={"Authorization": "Bearer not.a.token"})
    assert plain.status_code == bad.status_code == 200
    assert plain.json == bad.json


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_matches_the_openapi_document(
    make_app: Callable[..., Flask], keys: dict[str, Any], algorithm: str
) -> None:
    document = openapi_document()
    schema = {"$ref": "#/components/schemas/JWKSet", "components": document["components"]}
    app = make_app(
        COCART_JWT_ALGORITHM=algorithm, COCART_JWT_PRIVATE_KEY=pem_private(keys[algorithm])
    )
    body = _jwks(app).json
    errors = [str(e) for e in jsonschema_rs.validator_for(schema).iter_errors(body)]
    assert not errors
    # The document's schema refuses a private member.
    leaked = {"keys": [{**body["keys"][0], "d": "AAAA"}]}
    assert not jsonschema_rs.validator_for(schema).is_valid(leaked)

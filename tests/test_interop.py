"""Interoperability with an independent JOSE implementation (jwcrypto) and RFC test vectors.

For every supported family: tokens issued by ``POST /login`` verify with
jwcrypto using only the served JWK Set (or, for HS*, an ``oct`` key made from
the secret), and tokens minted by jwcrypto with the same key and claim set are
accepted by a protected view.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from flask import Flask
from flask.testing import FlaskClient
from jwcrypto import jwk, jws, jwt

from flask_cocart_jwt.keys import b64url, load_keyring, thumbprint
from tests.conftest import AuthActions, assert_error
from tests.security import pem_private, pem_public

#: (test id, JWS algorithm, key factory); RSA keys are 2048 bits.
ASYMMETRIC: list[tuple[str, str, Callable[[], Any]]] = [
    ("RS256", "RS256", lambda: rsa.generate_private_key(65537, 2048)),
    ("PS256", "PS256", lambda: rsa.generate_private_key(65537, 2048)),
    ("ES256", "ES256", lambda: ec.generate_private_key(ec.SECP256R1())),
    ("ES384", "ES384", lambda: ec.generate_private_key(ec.SECP384R1())),
    ("ES512", "ES512", lambda: ec.generate_private_key(ec.SECP521R1())),
    ("EdDSA-Ed25519", "EdDSA", ed25519.Ed25519PrivateKey.generate),
    ("EdDSA-Ed448", "EdDSA", ed448.Ed448PrivateKey.generate),
]
HMAC = ["HS256", "HS384", "HS512"]


@pytest.fixture(scope="module")
def private_pems() -> dict[str, bytes]:
    """One freshly generated key per case, shared by the module's tests."""
    return {case_id: pem_private(factory()) for case_id, _, factory in ASYMMETRIC}


@pytest.fixture(scope="module")
def hmac_secret() -> str:
    """A random secret long enough for HS512."""
    return secrets.token_urlsafe(64)


class Setup:
    """An app with one algorithm, a client, and the key as a jwcrypto JWK."""

    def __init__(self, app: Flask, algorithm: str, signing_jwk: jwk.JWK) -> None:
        self.app = app
        self.algorithm = algorithm
        self.signing_jwk = signing_jwk
        self.client: FlaskClient = app.test_client()
        self.auth = AuthActions(self.client)

    def jwks(self) -> dict[str, Any]:
        response = self.client.get("/auth/jwks.json")
        assert response.status_code == 200
        body = response.json
        assert isinstance(body, dict)
        return body


@pytest.fixture(params=[case_id for case_id, _, _ in ASYMMETRIC] + HMAC)
def setup(
    request: pytest.FixtureRequest,
    make_app: Callable[..., Flask],
    private_pems: dict[str, bytes],
    hmac_secret: str,
) -> Setup:
    case_id: str = request.param
    if case_id in HMAC:
        app = make_app(
            COCART_JWT_ALGORITHM=case_id,
            COCART_JWT_SECRET_KEY=hmac_secret,
            COCART_JWT_RATELIMIT_ENABLED=False,
        )
        key = jwk.JWK(kty="oct", k=b64url(hmac_secret.encode()))
        return Setup(app, case_id, key)
    algorithm = next(alg for cid, alg, _ in ASYMMETRIC if cid == case_id)
    app = make_app(
        COCART_JWT_ALGORITHM=algorithm,
        COCART_JWT_PRIVATE_KEY=private_pems[case_id],
        COCART_JWT_RATELIMIT_ENABLED=False,
    )
    return Setup(app, algorithm, jwk.JWK.from_pem(private_pems[case_id]))


def _header(token: str) -> dict[str, Any]:
    header = jws.JWS()
    header.deserialize(token)
    return dict(header.jose_header)


def _verification_keys(s: Setup) -> jwk.JWKSet:
    """What a third party has: the served JWK Set, or for HS* the shared secret."""
    if s.algorithm in HMAC:
        assert s.jwks() == {"keys": []}
        keyset = jwk.JWKSet()
        key = jwk.JWK(**s.signing_jwk.export(as_dict=True), kid=_kid(s))
        keyset.add(key)
        return keyset
    return jwk.JWKSet.from_json(json.dumps(s.jwks()))


def _kid(s: Setup) -> str:
    """The kid a third party would use: the JWK Set's, or (HS*) a login token's."""
    if s.algorithm in HMAC:
        kid: str = _header(s.auth.tokens()["access_token"])["kid"]
        return kid
    (key,) = s.jwks()["keys"]
    kid = key["kid"]
    return kid


def test_issued_token_verifies_with_jwks_only(setup: Setup) -> None:
    tokens = setup.auth.tokens()
    keyset = _verification_keys(setup)
    verified = jwt.JWT(jwt=tokens["access_token"], key=keyset, algs=[setup.algorithm])
    header = json.loads(verified.header)
    claims = json.loads(verified.claims)
    assert header == {"alg": setup.algorithm, "typ": "at+jwt", "kid": _kid(setup)}
    assert claims["sub"] == "alice"
    assert claims["sid"] == tokens["session_id"]
    assert claims["fresh"] is True
    assert claims["iat"] == claims["nbf"] <= time.time() < claims["exp"]
    assert set(claims) >= {"sub", "iat", "nbf", "exp", "jti", "sid", "fresh"}

    # The check above can fail: another key of the same type does not verify.
    with pytest.raises(jws.InvalidJWSSignature):
        jwt.JWT(jwt=tokens["access_token"], key=_another_key(setup), algs=[setup.algorithm])


def _another_key(s: Setup) -> jwk.JWK:
    """A new key of the same type (and curve) as the app's."""
    if s.algorithm in HMAC:
        return jwk.JWK.generate(kty="oct", size=512)
    public = s.signing_jwk.export_public(as_dict=True)
    if public["kty"] == "RSA":
        return jwk.JWK.generate(kty="RSA", size=2048)
    return jwk.JWK.generate(kty=public["kty"], crv=public["crv"])


def _mint(
    s: Setup, *, sid: str, fresh: bool = True, key: jwk.JWK | None = None
) -> tuple[str, dict[str, Any]]:
    now = int(time.time())
    claims = {
        "sub": "alice",
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "jti": secrets.token_urlsafe(16),
        "sid": sid,
        "fresh": fresh,
    }
    token = jwt.JWT(header={"alg": s.algorithm, "typ": "at+jwt", "kid": _kid(s)}, claims=claims)
    token.make_signed_token(key or s.signing_jwk)
    return token.serialize(), claims


def test_jwcrypto_token_is_accepted(setup: Setup) -> None:
    # The revocation check refuses revoked sessions only; take a live one from a login.
    sid = setup.auth.tokens()["session_id"]
    token, claims = _mint(setup, sid=sid)

    me = setup.auth.get("/me", token)
    assert me.status_code == 200, me.json
    assert me.json == {"identity": "alice", "claims": claims}
    assert setup.auth.post("/fresh", token).status_code == 200
    validated = setup.auth.post("/auth/validate-token", token)
    assert validated.status_code == 200, validated.json
    assert validated.json == {
        "valid": True,
        "identity": "alice",
        "session_id": sid,
        "expires_at": claims["exp"],
    }

    not_fresh, _ = _mint(setup, sid=sid, fresh=False)
    assert setup.auth.get("/me", not_fresh).status_code == 200
    assert_error(setup.auth.post("/fresh", not_fresh), 401, "fresh_token_required")


def test_jwcrypto_token_of_another_key_is_refused(setup: Setup) -> None:
    sid = setup.auth.tokens()["session_id"]
    token, _ = _mint(setup, sid=sid, key=_another_key(setup))
    assert_error(setup.auth.get("/me", token), 401, "invalid_token")


def test_jwcrypto_token_of_revoked_session_is_refused(setup: Setup) -> None:
    tokens = setup.auth.tokens()
    token, _ = _mint(setup, sid=tokens["session_id"])
    assert setup.auth.post("/auth/revoke", token).status_code == 200
    assert_error(setup.auth.get("/me", token), 401, "session_revoked")


# -- published test vectors --------------------------------------------------

#: RFC 8037 appendix A.1: an Ed25519 key pair.
RFC8037_D = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"
RFC8037_X = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
#: RFC 8037 appendix A.3: the RFC 7638 thumbprint of that public key.
RFC8037_THUMBPRINT = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
#: RFC 8037 appendix A.4: a JWS over "Example of Ed25519 signing".
RFC8037_JWS = (
    "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc."
    "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
)
#: RFC 7638 section 3.1: an RSA public key and its SHA-256 thumbprint.
RFC7638_JWK = {
    "kty": "RSA",
    "n": (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
    ),
    "e": "AQAB",
    "alg": "RS256",
    "kid": "2011-04-29",
}
RFC7638_THUMBPRINT = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _rfc8037_private_key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.from_private_bytes(_b64decode(RFC8037_D))


def _keyring(algorithm: str, private_pem: bytes, **config: Any) -> Any:
    return load_keyring(
        {
            "COCART_JWT_ALGORITHM": algorithm,
            "COCART_JWT_KEY_ID": None,
            "COCART_JWT_SECRET_KEY": None,
            "COCART_JWT_PRIVATE_KEY": private_pem,
            "COCART_JWT_PUBLIC_KEY": None,
            "COCART_JWT_DECODE_KEYS": {},
            **config,
        }
    )


def test_rfc8037_key_pair_matches_the_published_public_key() -> None:
    keyring = _keyring("EdDSA", pem_private(_rfc8037_private_key()))
    (key,) = keyring.verification_keys.values()
    assert key.public_jwk is not None
    assert key.public_jwk["x"] == RFC8037_X
    assert key.public_jwk["crv"] == "Ed25519"
    # The default kid is the RFC 7638 thumbprint: RFC 8037 A.3.
    assert keyring.signing_kid == key.kid == RFC8037_THUMBPRINT


def test_rfc8037_signature_verifies_with_the_public_key() -> None:
    public_pem = pem_public(_rfc8037_private_key())
    keyring = _keyring(
        "EdDSA",
        pem_private(ed25519.Ed25519PrivateKey.generate()),
        COCART_JWT_DECODE_KEYS={"rfc8037": public_pem},
    )
    key = keyring.verification_keys["rfc8037"]
    header, payload, signature = RFC8037_JWS.split(".")
    assert _b64decode(payload) == b"Example of Ed25519 signing"
    signing_input = f"{header}.{payload}".encode("ascii")
    assert key.verify(signing_input, _b64decode(signature)) is True
    # ... and only that signature over only that input.
    tampered = bytearray(_b64decode(signature))
    tampered[0] ^= 1
    assert key.verify(signing_input, bytes(tampered)) is False
    assert key.verify(signing_input + b"x", _b64decode(signature)) is False


def test_rfc8037_signature_is_reproduced() -> None:
    """Ed25519 is deterministic: our signer gives the RFC's bytes exactly."""
    keyring = _keyring("EdDSA", pem_private(_rfc8037_private_key()))
    header, payload, signature = RFC8037_JWS.split(".")
    assert b64url(keyring.sign(f"{header}.{payload}".encode("ascii"))) == signature


def test_rfc8037_vector_with_jwcrypto() -> None:
    """The vector as jwcrypto reads it: a cross-check of the constants above."""
    key = jwk.JWK(kty="OKP", crv="Ed25519", x=RFC8037_X)
    token = jws.JWS()
    token.deserialize(RFC8037_JWS)
    token.verify(key, alg="EdDSA")
    assert token.payload == b"Example of Ed25519 signing"
    assert key.thumbprint() == RFC8037_THUMBPRINT


def test_rfc7638_thumbprint() -> None:
    assert thumbprint(RFC7638_JWK) == RFC7638_THUMBPRINT
    # Only the required members count: alg, kid and member order do not.
    reordered = {"e": "AQAB", "n": RFC7638_JWK["n"], "kty": "RSA"}
    assert thumbprint(reordered) == RFC7638_THUMBPRINT


def test_rfc8037_thumbprint() -> None:
    assert thumbprint({"crv": "Ed25519", "kty": "OKP", "x": RFC8037_X}) == RFC8037_THUMBPRINT


def test_default_kid(setup: Setup, hmac_secret: str) -> None:
    """The RFC 7638 thumbprint as jwcrypto computes it; for a secret, nothing of it."""
    kid = _kid(setup)
    if setup.algorithm in HMAC:
        assert kid
        assert hmac_secret not in kid
        assert kid not in hmac_secret
        assert kid != jwk.JWK(kty="oct", k=b64url(hmac_secret.encode())).thumbprint()
        return
    (served,) = setup.jwks()["keys"]
    assert kid == served["kid"] == jwk.JWK(**served).thumbprint()

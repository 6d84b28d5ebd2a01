"""DPoP clients for the tests: key pairs that make RFC 9449 proofs.

:class:`ProofKey` signs proofs with PyJWT (the test's own client);
``tests/test_dpop_interop.py`` makes them with jwcrypto too, an independent
JOSE library. :class:`DPoPActions` logs in, refreshes and calls protected
routes on a test client with a key.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import PASSWORDS

BASE = "http://localhost"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def ath(token: str) -> str:
    """The ``ath`` of ``token``."""
    return b64url(hashlib.sha256(token.encode()).digest())


def new_private_key(algorithm: str) -> Any:
    if algorithm.startswith("ES"):
        curve = {"ES256": ec.SECP256R1, "ES384": ec.SECP384R1, "ES512": ec.SECP521R1}[algorithm]
        return ec.generate_private_key(curve())
    if algorithm == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class ProofKey:
    """A client's DPoP key pair and its proofs."""

    algorithm: str = "ES256"
    private_key: Any = None
    #: Replace or add header members (``None`` removes one).
    header: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.private_key is None:
            self.private_key = new_private_key(self.algorithm)

    @property
    def public_jwk(self) -> dict[str, Any]:
        jwk = json.loads(
            jwt.algorithms.get_default_algorithms()[self.algorithm].to_jwk(
                self.private_key.public_key()
            )
        )
        jwk.pop("key_ops", None)
        return dict(jwk)

    @property
    def jkt(self) -> str:
        """The RFC 7638 thumbprint of the public key."""
        jwk = self.public_jwk
        members = {
            "RSA": ("e", "kty", "n"),
            "EC": ("crv", "kty", "x", "y"),
            "OKP": ("crv", "kty", "x"),
        }
        canonical = json.dumps(
            {m: jwk[m] for m in members[jwk["kty"]]}, separators=(",", ":"), sort_keys=True
        )
        return b64url(hashlib.sha256(canonical.encode()).digest())

    def proof(
        self,
        method: str,
        url: str,
        *,
        access_token: str | None = None,
        nonce: str | None = None,
        iat: Any = None,
        claims: dict[str, Any] | None = None,
        header: dict[str, Any] | None = None,
    ) -> str:
        """A proof for ``method`` ``url`` (a path is made absolute on :data:`BASE`)."""
        body: dict[str, Any] = {
            "jti": secrets.token_urlsafe(16),
            "htm": method,
            "htu": url if "://" in url else BASE + url,
            "iat": int(time.time()) if iat is None else iat,
        }
        if access_token is not None:
            body["ath"] = ath(access_token)
        if nonce is not None:
            body["nonce"] = nonce
        for name, value in (claims or {}).items():
            if value is None:
                body.pop(name, None)
            else:
                body[name] = value
        headers: dict[str, Any] = {"typ": "dpop+jwt", "jwk": self.public_jwk}
        for name, value in {**self.header, **(header or {})}.items():
            if value is None:
                headers.pop(name, None)
            else:
                headers[name] = value
        return jwt.encode(body, self.private_key, algorithm=self.algorithm, headers=headers)


class DPoPActions:
    """Log in, refresh and call routes with a DPoP key, on a test client."""

    def __init__(self, client: FlaskClient, key: ProofKey | None = None, prefix: str = "/auth"):
        self.client = client
        self.key = key or ProofKey()
        self.prefix = prefix

    def login(self, username: str = "alice", *, proof: str | None = None, **kwargs: Any) -> Any:
        path = f"{self.prefix}/login"
        headers = {"DPoP": proof if proof is not None else self.key.proof("POST", path)}
        return self.client.post(
            path,
            json={"username": username, "password": PASSWORDS[username]},
            headers=headers,
            **kwargs,
        )

    def tokens(self, username: str = "alice") -> dict[str, Any]:
        response = self.login(username)
        assert response.status_code == 200, response.json
        body: dict[str, Any] = response.json
        return body

    def refresh(self, refresh_token: str, *, proof: str | None = "make") -> Any:
        path = f"{self.prefix}/refresh-token"
        headers = {}
        if proof == "make":
            proof = self.key.proof("POST", path)
        if proof is not None:
            headers["DPoP"] = proof
        return self.client.post(path, json={"refresh_token": refresh_token}, headers=headers)

    def call(
        self,
        method: str,
        path: str,
        access_token: str,
        *,
        proof: str | None = "make",
        **kwargs: Any,
    ) -> Any:
        headers = {"Authorization": f"DPoP {access_token}"}
        if proof == "make":
            proof = self.key.proof(method, path, access_token=access_token)
        if proof is not None:
            headers["DPoP"] = proof
        return self.client.open(path, method=method, headers=headers, **kwargs)

    def get(self, path: str, access_token: str, **kwargs: Any) -> Any:
        return self.call("GET", path, access_token, **kwargs)


def segment(value: Any) -> str:
    """A JWS segment: base64url of ``value`` (JSON unless bytes or str)."""
    if isinstance(value, str):
        value = value.encode()
    elif not isinstance(value, bytes):
        value = json.dumps(value, separators=(",", ":")).encode()
    return b64url(value)


def forge(header: Any, claims: Any, signature: bytes = b"\0" * 64) -> str:
    """A proof with any header, claims and signature (nothing is checked)."""
    return f"{segment(header)}.{segment(claims)}.{b64url(signature)}"


def resign(key: ProofKey, header: Any, claims: Any) -> str:
    """``header`` and ``claims`` signed with ``key`` exactly as given (PyJWT's
    algorithm object, so that a header PyJWT would refuse to write is signed too)."""
    signing_input = f"{segment(header)}.{segment(claims)}"
    algorithm = jwt.algorithms.get_default_algorithms()[key.algorithm]
    signature = algorithm.sign(signing_input.encode(), key.private_key)
    return f"{signing_input}.{b64url(signature)}"


def claims_for(method: str, url: str, **extra: Any) -> dict[str, Any]:
    """The claims of a proof for ``method`` ``url``."""
    return {
        "jti": secrets.token_urlsafe(16),
        "htm": method,
        "htu": url if "://" in url else BASE + url,
        "iat": int(time.time()),
        **extra,
    }


ALGS = 'algs="ES256 EdDSA PS256 RS256"'


def assert_dpop_error(response: Any, code: str = "invalid_dpop_proof") -> None:
    """The contract's 401 for a refused proof, with the DPoP challenge."""
    assert response.status_code == 401, (response.status_code, response.get_data()[:300])
    assert response.json["error"] == code, response.json
    assert response.json["message"]
    challenge = response.headers["WWW-Authenticate"]
    assert challenge == f'DPoP error="{code}", {ALGS}', challenge


class Bound:
    """An app in DPoP mode, a key, and an access token bound to that key."""

    def __init__(self, app: Flask, key: ProofKey) -> None:
        self.app = app
        self.client: FlaskClient = app.test_client()
        self.key = key
        login = self.client.post(
            "/auth/login",
            json={"username": "alice", "password": "wonderland"},
            headers={"DPoP": key.proof("POST", "/auth/login")},
        )
        assert login.status_code == 200, login.json
        assert login.json["token_type"] == "DPoP"
        self.token: str = login.json["access_token"]

    def header(self) -> dict[str, Any]:
        return {"typ": "dpop+jwt", "alg": self.key.algorithm, "jwk": self.key.public_jwk}

    def claims(self, **extra: Any) -> dict[str, Any]:
        return claims_for("GET", "/me", ath=ath(self.token), **extra)

    def send(self, proof: str | None, *, path: str = "/me", **kwargs: Any) -> Any:
        headers: Any = {"Authorization": f"DPoP {self.token}"}
        if proof is not None:
            headers["DPoP"] = proof
        headers = kwargs.pop("headers", headers)
        return self.client.get(path, headers=headers, **kwargs)

    def good(self, **kwargs: Any) -> str:
        return self.key.proof("GET", "/me", access_token=self.token, **kwargs)

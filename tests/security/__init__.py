"""Helpers for the token attack tests: forging, re-signing and sending tokens.

Forged tokens are signed with the app's real secret or key (through ``hmac``
and PyJWT's algorithm objects, never through the extension), so that a test
is rejected only by the one defence it names.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from flask.testing import FlaskClient
from jwt.algorithms import get_default_algorithms

from tests.conftest import SECRET

ALGORITHMS = get_default_algorithms()
#: The error codes a token-level failure may give.
TOKEN_ERRORS = frozenset({"invalid_token", "token_expired", "missing_token"})
#: Rate limits would turn repeated attacks into 429s; these tests check tokens.
NO_LIMITS: dict[str, Any] = {"COCART_JWT_RATELIMIT_ENABLED": False}

Sender = Callable[[str], Any]


def b64(data: bytes) -> str:
    """Unpadded base64url."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64(segment: str) -> bytes:
    """Decode unpadded base64url."""
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def dump(obj: Any) -> bytes:
    """Compact JSON bytes, as a part of a token."""
    return json.dumps(obj, separators=(",", ":")).encode("utf-8")


def parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The header and the claims of ``token`` (no verification)."""
    header_b64, payload_b64, _ = token.split(".")
    return json.loads(unb64(header_b64)), json.loads(unb64(payload_b64))


def sign(signing_input: str, alg: str, key: Any) -> bytes:
    """A signature over ``signing_input``; HS* ``key`` is any bytes (even a PEM)."""
    data = signing_input.encode("ascii")
    if alg.startswith("HS"):
        secret = key.encode() if isinstance(key, str) else key
        digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
        return hmac.new(secret, data, digest[alg]).digest()
    signature: bytes = ALGORITHMS[alg].sign(data, key)
    return signature


def forge(
    header: dict[str, Any] | bytes | str,
    claims: dict[str, Any] | bytes | str,
    key: Any = SECRET,
    alg: str | None = None,
) -> str:
    """A compact JWS of ``header`` and ``claims`` signed with ``key``.

    Dicts are JSON-encoded, bytes are base64url-encoded as they are, and a
    ``str`` is used as the segment text itself (for non-canonical base64).
    ``alg`` defaults to the header's ``alg``.
    """

    def segment(part: dict[str, Any] | bytes | str) -> str:
        if isinstance(part, str):
            return part
        return b64(part if isinstance(part, bytes) else dump(part))

    if alg is None:
        assert isinstance(header, dict)
        alg = header["alg"]
    signing_input = f"{segment(header)}.{segment(claims)}"
    return f"{signing_input}.{b64(sign(signing_input, alg, key))}"


#: Pass as a claim value to :func:`claims_at` to leave the claim out.
DROP: Any = object()


def claims_at(now: float | None = None, **overrides: Any) -> dict[str, Any]:
    """Well-formed access-token claims issued at ``now`` (default: the clock)."""
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {
        "sub": "alice",
        "iat": issued,
        "nbf": issued,
        "exp": issued + 600,
        "jti": "jti-forged-0001",
        "sid": "sid-forged-0001",
        "fresh": True,
    }
    for name, value in overrides.items():
        if value is DROP:
            claims.pop(name, None)
        else:
            claims[name] = value
    return claims


def sender(client: FlaskClient, endpoint: str) -> Sender:
    """Send a Bearer token to ``/me`` (GET) or ``/auth/validate-token`` (POST)."""

    def send(token: str) -> Any:
        headers = {"Authorization": f"Bearer {token}"}
        if endpoint == "/me":
            response = client.get("/me", headers=headers)
        else:
            response = client.post(endpoint, headers=headers)
        if response.status_code != 200 and len(token) > 16:
            assert token not in response.get_data(as_text=True), "the error echoes the token"
        return response

    return send


def pem_private(key: Any) -> bytes:
    """The unencrypted PKCS#8 PEM of a private key."""
    pem: bytes = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return pem


def pem_public(key: Any) -> bytes:
    """The SubjectPublicKeyInfo PEM of a (private or public) key."""
    public = key.public_key() if hasattr(key, "public_key") else key
    pem: bytes = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pem


def new_rsa(bits: int = 2048) -> rsa.RSAPrivateKey:
    """A fresh RSA private key."""
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def new_ec(curve: ec.EllipticCurve) -> ec.EllipticCurvePrivateKey:
    """A fresh EC private key on ``curve``."""
    return ec.generate_private_key(curve)


def new_ed25519() -> ed25519.Ed25519PrivateKey:
    """A fresh Ed25519 private key."""
    return ed25519.Ed25519PrivateKey.generate()

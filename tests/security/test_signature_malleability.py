"""ECDSA signature malleability must not multiply a per-token rate limit.

An ECDSA signature ``(r, s)`` has a twin ``(r, n - s)`` that verifies as well:
the same token, spelled differently. Per-token limits count a token by its
verified ``jti``, so both spellings share one counter.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from flask import Flask

from tests.conftest import AuthActions
from tests.security import b64, new_ec, pem_private, unb64
from tests.support import assert_limited

#: The order ``n`` of the P-256 group (SEC 2, secp256r1).
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def twin(token: str, public_key: ec.EllipticCurvePublicKey) -> str:
    """``token`` with its ES256 signature ``(r, s)`` re-encoded as ``(r, n - s)``."""
    signing_input, _, signature = token.rpartition(".")
    raw = unb64(signature)
    r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    der = encode_dss_signature(r, P256_ORDER - s)
    # The twin is a valid signature in its own right, whatever our verifier says.
    public_key.verify(der, signing_input.encode("ascii"), ec.ECDSA(hashes.SHA256()))
    r2, s2 = decode_dss_signature(der)
    return f"{signing_input}.{b64(r2.to_bytes(32, 'big') + s2.to_bytes(32, 'big'))}"


@pytest.mark.parametrize(
    ("route", "config"),
    [
        ("/auth/validate-token", {"COCART_JWT_LIMIT_VALIDATE_PER_TOKEN": "2 per minute"}),
        ("/me", {"COCART_JWT_LIMIT_PROTECTED_PER_TOKEN": "2 per minute"}),
    ],
    ids=["validate-token", "protected-view"],
)
def test_a_re_encoded_signature_shares_the_tokens_counter(
    make_app: Callable[..., Flask], route: str, config: dict[str, Any]
) -> None:
    key = new_ec(ec.SECP256R1())
    app = make_app(
        COCART_JWT_ALGORITHM="ES256",
        COCART_JWT_PRIVATE_KEY=pem_private(key),
        COCART_JWT_LIMIT_VALIDATE_PER_IP="100 per minute",
        **config,
    )
    auth = AuthActions(app.test_client())

    def send(token: str) -> Any:
        if route == "/me":
            return auth.get(route, token)
        return auth.post(route, token)

    token = auth.tokens()["access_token"]
    other = twin(token, key.public_key())
    assert other != token
    assert send(token).status_code == 200
    assert send(other).status_code == 200  # accepted: a valid signature of the same token
    assert_limited(send(token))
    assert_limited(send(other))
    # Another token of the same user has a counter of its own.
    assert send(auth.tokens()["access_token"]).status_code == 200

"""Property tests: any DPoP proof, random or mutated, is a documented 401, never a 500.

Random header members (``jwk`` of every shape included) are signed with a
real key, so that the key loading, not only the parser, sees them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import NO_LIMITS
from tests.dpop_support import Bound, ProofKey, assert_dpop_error, b64url, resign
from tests.security import unb64

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
LATIN1 = st.characters(min_codepoint=0x20, max_codepoint=0xFF)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
JWK_MEMBERS = st.sampled_from(["kty", "crv", "x", "y", "n", "e", "alg", "use", "kid", "d"])
JWK_VALUES = st.sampled_from(["EC", "RSA", "OKP", "oct", "P-256", "P-384", "Ed25519", "AQAB", ""])


@pytest.fixture
def bound(make_app: Callable[..., Flask]) -> Bound:
    return Bound(make_app(COCART_JWT_DPOP="optional", **NO_LIMITS), ProofKey())


@FUZZ
@given(proof=st.text(alphabet=LATIN1, max_size=300))
def test_random_text(bound: Bound, proof: str) -> None:
    assert_dpop_error(bound.send(proof))


@FUZZ
@given(
    header=st.dictionaries(
        st.sampled_from(["typ", "alg", "jwk", "crit", "kid", "x5c", "jku"]), JSON, max_size=5
    ),
    jwk=st.dictionaries(JWK_MEMBERS, JWK_VALUES | JSON, max_size=6),
    keep_typ=st.booleans(),
)
def test_random_headers_signed_with_a_real_key(
    bound: Bound, header: dict[str, Any], jwk: dict[str, Any], keep_typ: bool
) -> None:
    merged = {**bound.header(), **header}
    if keep_typ:
        merged["typ"] = "dpop+jwt"
    if "jwk" not in header:
        merged["jwk"] = jwk
    assert_dpop_error(bound.send(resign(bound.key, merged, bound.claims())))


@FUZZ
@given(claims=st.dictionaries(st.sampled_from(["jti", "htm", "htu", "iat", "ath", "nonce"]), JSON))
def test_random_claims_signed_with_the_right_key(bound: Bound, claims: dict[str, Any]) -> None:
    assert_dpop_error(bound.send(resign(bound.key, bound.header(), claims)))


@FUZZ
@given(data=st.data())
def test_bit_flips_of_a_valid_proof(bound: Bound, data: st.DataObject) -> None:
    segments = bound.good().split(".")
    index = data.draw(st.integers(0, 2), label="segment")
    raw = bytearray(unb64(segments[index]))
    for bit in data.draw(
        st.lists(st.integers(0, len(raw) * 8 - 1), min_size=1, max_size=4, unique=True),
        label="bits",
    ):
        raw[bit // 8] ^= 1 << (bit % 8)
    segments[index] = b64url(bytes(raw))
    assert_dpop_error(bound.send(".".join(segments)))

"""DPoP proofs: every check of RFC 9449 section 4.3, one refusal per test.

Each test sends a bound access token as ``Authorization: DPoP`` to ``/me``
with one thing wrong in its proof, and expects ``401 invalid_dpop_proof``
with the DPoP challenge (RFC 9449 section 7.1); the proof checks are the same
code on the token routes (``tests/test_dpop_binding.py``).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from flask import Flask
from flask.testing import FlaskClient

from flask_cocart_jwt.dpop import normalize_url
from tests.conftest import NO_LIMITS
from tests.dpop_support import (
    Bound,
    ProofKey,
    assert_dpop_error,
    ath,
    b64url,
    claims_for,
    forge,
    resign,
    segment,
)


@pytest.fixture
def dpop_app(make_app: Callable[..., Flask]) -> Flask:
    return make_app(COCART_JWT_DPOP="optional", **NO_LIMITS)


@pytest.fixture
def bound(dpop_app: Flask) -> Bound:
    return Bound(dpop_app, ProofKey())


# -- the accepted proofs -------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["ES256", "EdDSA", "PS256", "RS256"])
def test_a_valid_proof_of_each_default_algorithm_is_accepted(
    dpop_app: Flask, algorithm: str
) -> None:
    subject = Bound(dpop_app, ProofKey(algorithm))
    response = subject.send(subject.good())
    assert response.status_code == 200, response.json
    assert response.json["claims"]["cnf"] == {"jkt": subject.key.jkt}


def test_a_configured_algorithm_outside_the_defaults_is_accepted(
    make_app: Callable[..., Flask],
) -> None:
    app = make_app(COCART_JWT_DPOP="optional", COCART_JWT_DPOP_ALGORITHMS=["ES384"], **NO_LIMITS)
    subject = Bound(app, ProofKey("ES384"))
    assert subject.send(subject.good()).status_code == 200


@pytest.mark.parametrize(
    "htu",
    [
        "HTTP://LOCALHOST/me",
        "http://localhost:80/me",
        "http://localhost/./me",
        "http://localhost/x/../me",
        "http://localhost/%6De",
    ],
)
def test_htu_is_compared_after_rfc3986_normalisation(bound: Bound, htu: str) -> None:
    response = bound.send(bound.good(claims={"htu": htu}))
    assert response.status_code == 200, response.json


# -- 4.3 step 1: exactly one DPoP header ------------------------------------------


def test_missing_proof(bound: Bound) -> None:
    assert_dpop_error(bound.send(None))


def test_empty_proof(bound: Bound) -> None:
    assert_dpop_error(bound.send(""))


def test_two_dpop_headers(bound: Bound) -> None:
    headers = [
        ("Authorization", f"DPoP {bound.token}"),
        ("DPoP", bound.good()),
        ("DPoP", bound.good()),
    ]
    assert_dpop_error(bound.send(None, headers=headers))


def test_oversized_proof(bound: Bound) -> None:
    padding = "x" * 9000
    assert_dpop_error(bound.send(bound.good(claims={"pad": padding})))


# -- 4.3 step 2: a well-formed JWS -----------------------------------------------


@pytest.mark.parametrize(
    "proof",
    ["not-a-jwt", "a.b", "a.b.c.d", "a..c", "eyJ9.eyJ9.sig==", "e30.e30.AA AA", "é.é.é"],
)
def test_not_a_compact_jws(bound: Bound, proof: str) -> None:
    assert_dpop_error(bound.send(proof))


def test_non_canonical_base64(bound: Bound) -> None:
    header, claims, signature = bound.good().split(".")
    # A set unused bit in the last character: the same bytes, another spelling.
    last = signature[-1]
    twin = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    signature = signature[:-1] + twin[twin.index(last) + 1]
    assert_dpop_error(bound.send(f"{header}.{claims}.{signature}"))


def test_header_not_a_json_object(bound: Bound) -> None:
    claims = bound.claims()
    for header in ("[]", '"dpop+jwt"', "{", "\xff"):
        assert_dpop_error(bound.send(forge(header, claims)))


def test_duplicate_header_member(bound: Bound) -> None:
    header = json.dumps(bound.header())[:-1] + ', "typ": "dpop+jwt"}'
    signing_input = f"{segment(header)}.{segment(bound.claims())}"
    proof = bound.key.proof("GET", "/me")  # any signature: parsing fails first
    assert_dpop_error(bound.send(f"{signing_input}.{proof.split('.')[2]}"))


def test_claims_not_a_json_object(bound: Bound) -> None:
    for claims in ("[]", "null", "{}x"):
        assert_dpop_error(bound.send(resign(bound.key, bound.header(), claims)))


# -- 4.3 step 4: typ ---------------------------------------------------------------


@pytest.mark.parametrize("typ", [None, "JWT", "at+jwt", "DPOP+JWT", "application/dpop+jwt", 1])
def test_wrong_typ(bound: Bound, typ: Any) -> None:
    header = bound.header()
    if typ is None:
        del header["typ"]
    else:
        header["typ"] = typ
    assert_dpop_error(bound.send(resign(bound.key, header, bound.claims())))


def test_crit_header(bound: Bound) -> None:
    header = {**bound.header(), "crit": ["exp"]}
    assert_dpop_error(bound.send(resign(bound.key, header, bound.claims())))


# -- 4.3 step 5: an allowed asymmetric algorithm ------------------------------------


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
def test_alg_none_in_any_casing(bound: Bound, alg: str) -> None:
    header = {**bound.header(), "alg": alg}
    for signature in (b"", b"\0" * 64):
        assert_dpop_error(bound.send(forge(header, bound.claims(), signature)))


def test_hs256_proof_keyed_with_the_public_key(bound: Bound) -> None:
    import hashlib
    import hmac

    jwk = bound.key.public_jwk
    header = {"typ": "dpop+jwt", "alg": "HS256", "jwk": jwk}
    signing_input = f"{segment(header)}.{segment(bound.claims())}"
    for secret in (json.dumps(jwk).encode(), jwk["x"].encode()):
        mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        assert_dpop_error(bound.send(f"{signing_input}.{b64url(mac)}"))


def test_hs256_proof_with_an_oct_jwk(bound: Bound) -> None:
    import hashlib
    import hmac

    secret = secrets.token_bytes(32)
    header = {"typ": "dpop+jwt", "alg": "HS256", "jwk": {"kty": "oct", "k": b64url(secret)}}
    signing_input = f"{segment(header)}.{segment(bound.claims())}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    assert_dpop_error(bound.send(f"{signing_input}.{b64url(mac)}"))


def test_algorithm_not_in_the_allow_list(make_app: Callable[..., Flask]) -> None:
    app = make_app(COCART_JWT_DPOP="optional", COCART_JWT_DPOP_ALGORITHMS=["ES256"], **NO_LIMITS)
    client = app.test_client()
    key = ProofKey("EdDSA")
    response = client.post(
        "/auth/login",
        json={"username": "alice", "password": "wonderland"},
        headers={"DPoP": key.proof("POST", "/auth/login")},
    )
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'DPoP error="invalid_dpop_proof", algs="ES256"'


@pytest.mark.parametrize("alg", [None, 256, ["ES256"], "es256", "ES256K", "RSA-OAEP"])
def test_missing_or_unknown_alg(bound: Bound, alg: Any) -> None:
    header = bound.header()
    if alg is None:
        del header["alg"]
    else:
        header["alg"] = alg
    assert_dpop_error(bound.send(forge(header, bound.claims())))


# -- 4.3 step 7 (and 2): a public jwk, matching the algorithm -------------------------


@pytest.mark.parametrize("algorithm", ["ES256", "RS256", "EdDSA"])
def test_private_key_in_jwk(dpop_app: Flask, algorithm: str) -> None:
    subject = Bound(dpop_app, ProofKey(algorithm))
    import jwt

    private = json.loads(
        jwt.algorithms.get_default_algorithms()[algorithm].to_jwk(subject.key.private_key)
    )
    header = {**subject.header(), "jwk": private}
    assert "d" in private
    assert_dpop_error(subject.send(resign(subject.key, header, subject.claims())))


@pytest.mark.parametrize("member", ["d", "p", "q", "dp", "dq", "qi", "oth", "k"])
def test_any_private_member_in_jwk(bound: Bound, member: str) -> None:
    header = bound.header()
    header["jwk"] = {**header["jwk"], member: "AQAB"}
    assert_dpop_error(bound.send(resign(bound.key, header, bound.claims())))


@pytest.mark.parametrize(
    "jwk", [None, "key", [], {}, {"kty": "EC"}, {"kty": "EC", "crv": "P-256", "x": 1, "y": 2}]
)
def test_missing_or_malformed_jwk(bound: Bound, jwk: Any) -> None:
    header = bound.header()
    if jwk is None:
        del header["jwk"]
    else:
        header["jwk"] = jwk
    assert_dpop_error(bound.send(resign(bound.key, header, bound.claims())))


def test_jwk_of_another_key_type_than_alg(bound: Bound) -> None:
    rsa_key = ProofKey("RS256")
    # alg ES256 with an RSA key, signed by the EC key of the token.
    header = {**bound.header(), "jwk": rsa_key.public_jwk}
    assert_dpop_error(bound.send(resign(bound.key, header, bound.claims())))
    # alg RS256, signed with an RSA key, but the token's EC key in jwk.
    header = {**bound.header(), "alg": "RS256"}
    assert_dpop_error(bound.send(resign(rsa_key, header, bound.claims())))


def test_jwk_of_another_curve_than_alg(bound: Bound) -> None:
    p384 = ProofKey("ES384")
    header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": p384.public_jwk}
    signing_input = f"{segment(header)}.{segment(bound.claims())}"
    from cryptography.hazmat.primitives import hashes
    from jwt.utils import der_to_raw_signature

    der = p384.private_key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
    signature = der_to_raw_signature(der, p384.private_key.curve)
    assert_dpop_error(bound.send(f"{signing_input}.{b64url(signature)}"))


def test_rsa_key_under_2048_bits(dpop_app: Flask) -> None:
    small = ProofKey("RS256", rsa.generate_private_key(public_exponent=65537, key_size=1024))  # noqa: S505
    client = dpop_app.test_client()
    header = {"typ": "dpop+jwt", "alg": "RS256", "jwk": small.public_jwk}
    response = client.post(
        "/auth/login",
        json={"username": "alice", "password": "wonderland"},
        headers={"DPoP": resign(small, header, claims_for("POST", "/auth/login"))},
    )
    assert_dpop_error(response)


# -- 4.3 step 6: the signature -------------------------------------------------------


def test_signature_by_another_key(bound: Bound) -> None:
    other = ProofKey()
    proof = resign(other, bound.header(), bound.claims())  # bound's jwk, other's signature
    assert_dpop_error(bound.send(proof))


def test_tampered_claims(bound: Bound) -> None:
    header, _claims, signature = bound.good().split(".")
    changed = segment(bound.claims(jti="changed"))
    assert_dpop_error(bound.send(f"{header}.{changed}.{signature}"))


@pytest.mark.parametrize("signature", [b"", b"\0" * 64, b"\0" * 63, b"\xff" * 64, b"\0" * 72])
def test_empty_zero_or_truncated_signature(bound: Bound, signature: bytes) -> None:
    proof = forge(bound.header(), bound.claims(), signature)
    assert_dpop_error(bound.send(proof))


# -- 4.3 steps 8 and 9: htm and htu ----------------------------------------------------


@pytest.mark.parametrize("htm", ["POST", "get", "HEAD", "", None, ["GET"]])
def test_wrong_htm(bound: Bound, htm: Any) -> None:
    assert_dpop_error(bound.send(bound.good(claims={"htm": htm})))


@pytest.mark.parametrize(
    "htu",
    [
        "http://localhost/me?x=1",
        "http://localhost/me?",
        "http://localhost/me#frag",
        "http://evil.example/me",
        "https://localhost/me",
        "http://localhost:8080/me",
        "http://localhost/me/",
        "http://localhost/you",
        "http://user@localhost/me",
        "/me",
        "localhost/me",
        "",
        None,
        42,
    ],
)
def test_wrong_htu(bound: Bound, htu: Any) -> None:
    assert_dpop_error(bound.send(bound.good(claims={"htu": htu})))


def test_htu_is_the_request_url_without_its_query(bound: Bound) -> None:
    proof = bound.good()  # htu http://localhost/me
    assert bound.send(proof, query_string={"page": "2"}).status_code == 200


# -- 4.3 step 11: iat ----------------------------------------------------------------


@pytest.mark.parametrize("offset", [-61, -3600, 61, 86400])
def test_stale_or_future_iat(bound: Bound, offset: int) -> None:
    assert_dpop_error(bound.send(bound.good(iat=int(time.time()) + offset)))


@pytest.mark.parametrize("iat", ["now", None, True, 10**400, -(10**400), 1.5e300, [1]])
def test_ill_typed_iat(bound: Bound, iat: Any) -> None:
    if iat is None:
        proof = bound.good(claims={"iat": None})
    else:
        proof = resign(bound.key, bound.header(), bound.claims(iat=iat))
    assert_dpop_error(bound.send(proof))


def test_iat_window_edges_with_leeway(make_app: Callable[..., Flask]) -> None:
    app = make_app(
        COCART_JWT_DPOP="optional",
        COCART_JWT_DPOP_MAX_AGE=timedelta(seconds=30),
        COCART_JWT_LEEWAY=timedelta(seconds=5),
        **NO_LIMITS,
    )
    with time_machine.travel(1_900_000_000, tick=False):
        subject = Bound(app, ProofKey())
        now = int(time.time())
        for offset in (-35, 35):
            assert subject.send(subject.good(iat=now + offset)).status_code == 200
        for offset in (-36, 36):
            assert_dpop_error(subject.send(subject.good(iat=now + offset)))


# -- jti and replay (RFC 9449 section 11.1) --------------------------------------------


@pytest.mark.parametrize("jti", [None, "", 7, ["a"], "j" * 257])
def test_missing_or_ill_typed_jti(bound: Bound, jti: Any) -> None:
    assert_dpop_error(bound.send(bound.good(claims={"jti": jti})))


def test_replayed_proof(bound: Bound) -> None:
    proof = bound.good()
    assert bound.send(proof).status_code == 200
    assert_dpop_error(bound.send(proof))


def test_replayed_jti_in_a_new_proof(bound: Bound) -> None:
    jti = secrets.token_urlsafe(16)
    assert bound.send(bound.good(claims={"jti": jti})).status_code == 200
    # Another proof (a later iat, another signature) with the same jti.
    later = bound.good(claims={"jti": jti}, iat=int(time.time()) + 1)
    assert_dpop_error(bound.send(later))


def test_a_refused_proof_does_not_use_up_its_jti(bound: Bound) -> None:
    jti = secrets.token_urlsafe(16)
    assert_dpop_error(bound.send(bound.good(claims={"jti": jti, "htm": "POST"})))
    assert bound.send(bound.good(claims={"jti": jti})).status_code == 200


def test_replay_after_the_window_is_stale_not_cached(bound: Bound) -> None:
    with time_machine.travel(time.time(), tick=False) as traveller:
        proof = bound.good()
        assert bound.send(proof).status_code == 200
        traveller.shift(timedelta(seconds=61))
        assert_dpop_error(bound.send(proof))  # by its iat


# -- 4.3 step 12 / section 7.1: ath and the token's key ------------------------------------


def test_missing_ath(bound: Bound) -> None:
    proof = bound.key.proof("GET", "/me")
    assert_dpop_error(bound.send(proof))


@pytest.mark.parametrize("value", ["", "x", 1, None])
def test_wrong_ath(bound: Bound, value: Any) -> None:
    other = ath(bound.token + "x") if value is None else value
    assert_dpop_error(bound.send(bound.good(claims={"ath": other})))


def test_ath_of_another_token_of_the_same_key(bound: Bound) -> None:
    second = Bound(bound.app, bound.key)
    proof = bound.key.proof("GET", "/me", access_token=second.token)
    assert_dpop_error(bound.send(proof))


def test_proof_by_another_key_than_the_tokens(bound: Bound) -> None:
    other = ProofKey()
    proof = other.proof("GET", "/me", access_token=bound.token)
    assert_dpop_error(bound.send(proof))


# -- nonces (RFC 9449 section 8) --------------------------------------------------------


@pytest.fixture
def nonce_app(make_app: Callable[..., Flask]) -> Flask:
    return make_app(COCART_JWT_DPOP="optional", COCART_JWT_DPOP_NONCE=True, **NO_LIMITS)


def _login_with_nonce(client: FlaskClient, key: ProofKey) -> Any:
    first = client.post(
        "/auth/login",
        json={"username": "alice", "password": "wonderland"},
        headers={"DPoP": key.proof("POST", "/auth/login")},
    )
    assert_dpop_error(first, "use_dpop_nonce")
    nonce = first.headers["DPoP-Nonce"]
    return client.post(
        "/auth/login",
        json={"username": "alice", "password": "wonderland"},
        headers={"DPoP": key.proof("POST", "/auth/login", nonce=nonce)},
    ), nonce


def test_nonce_missing_then_given(nonce_app: Flask) -> None:
    client = nonce_app.test_client()
    key = ProofKey()
    login, nonce = _login_with_nonce(client, key)
    assert login.status_code == 200, login.json
    token = login.json["access_token"]
    headers = {
        "Authorization": f"DPoP {token}",
        "DPoP": key.proof("GET", "/me", access_token=token, nonce=nonce),
    }
    assert client.get("/me", headers=headers).status_code == 200
    headers["DPoP"] = key.proof("GET", "/me", access_token=token)
    assert_dpop_error(client.get("/me", headers=headers), "use_dpop_nonce")


def test_stale_or_forged_nonce(nonce_app: Flask) -> None:
    client = nonce_app.test_client()
    key = ProofKey()
    with time_machine.travel(1_900_000_000, tick=False) as traveller:
        _login, nonce = _login_with_nonce(client, key)
        header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": key.public_jwk}
        for forged in ("x" * 24, nonce[:-1] + ("A" if nonce[-1] != "A" else "B"), 7):
            proof = resign(key, header, claims_for("POST", "/auth/login", nonce=forged))
            response = client.post(
                "/auth/login",
                json={"username": "alice", "password": "wonderland"},
                headers={"DPoP": proof},
            )
            assert_dpop_error(response, "use_dpop_nonce")
        # A nonce lives one to two windows (60 s each): two windows later it is stale.
        traveller.shift(timedelta(seconds=121))
        response = client.post(
            "/auth/login",
            json={"username": "alice", "password": "wonderland"},
            headers={"DPoP": key.proof("POST", "/auth/login", nonce=nonce)},
        )
        assert_dpop_error(response, "use_dpop_nonce")
        assert response.headers["DPoP-Nonce"] != nonce


def test_the_nonce_is_the_same_in_two_apps_with_one_secret(
    make_app: Callable[..., Flask],
) -> None:
    config = {"COCART_JWT_DPOP": "optional", "COCART_JWT_DPOP_NONCE": True, **NO_LIMITS}
    first, second = make_app(**config), make_app(**config)
    key = ProofKey()
    with time_machine.travel(1_900_000_000, tick=False):
        _login, nonce = _login_with_nonce(first.test_client(), key)
        response = second.test_client().post(
            "/auth/login",
            json={"username": "alice", "password": "wonderland"},
            headers={"DPoP": key.proof("POST", "/auth/login", nonce=nonce)},
        )
    assert response.status_code == 200, response.json


# -- the URL normaliser --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "normal"),
    [
        ("HTTPS://Example.COM:443/a/./b/../c", "https://example.com/a/c"),
        ("http://[::1]:8080/%7euser/%2f", "http://[::1]:8080/~user/%2F"),
        ("http://example.com", "http://example.com/"),
        ("ftp://example.com/", None),
        ("http:///path", None),
        ("http://example.com:99999/", None),
        ("http://a@example.com/", None),
    ],
)
def test_normalize_url(url: str, normal: str | None) -> None:
    assert normalize_url(url) == normal

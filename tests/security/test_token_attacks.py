"""SPEC 9, forged signatures and headers: ``alg``, signatures, key confusion, ``kid``.

Each forged token is signed with the app's real key unless the attack is the
signature itself, so that only the defence under test can reject it. Every
attack is sent to a protected view and to ``POST /auth/validate-token``.
"""

from __future__ import annotations

import base64
import datetime
import json
import socket
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from flask import Flask

from tests.conftest import SECRET, AuthActions, assert_error
from tests.security import (
    ALGORITHMS,
    DROP,
    NO_LIMITS,
    Sender,
    b64,
    dump,
    forge,
    new_ec,
    new_rsa,
    parts,
    pem_private,
    pem_public,
    sender,
    sign,
)

Env = Callable[..., tuple[Sender, str]]
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return new_rsa()


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return new_ec(ec.SECP256R1())


@pytest.fixture(scope="module")
def attacker_key() -> rsa.RSAPrivateKey:
    return new_rsa()


@pytest.fixture(params=["/me", "/auth/validate-token"])
def env(request: pytest.FixtureRequest, make_app: Callable[..., Flask]) -> Env:
    """``env(**config)``: an app, a sender to the endpoint, and a valid token."""

    def build(**config: Any) -> tuple[Sender, str]:
        app = make_app(**NO_LIMITS, **config)
        token = AuthActions(app.test_client()).tokens()["access_token"]
        return sender(app.test_client(), request.param), token

    return build


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Record (and refuse) any attempt to open a network connection."""
    calls: list[Any] = []

    def refuse(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    return calls


def test_reforged_token_is_accepted(env: Env) -> None:
    """The forging helpers are right: a re-signed valid token passes."""
    send, token = env()
    header, claims = parts(token)
    assert header["alg"] == "HS256"
    assert header["typ"] == "at+jwt"
    assert header["kid"]
    assert send(forge(header, claims)).status_code == 200


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
def test_alg_none_any_casing(env: Env, alg: str) -> None:
    send, token = env()
    header, claims = parts(token)
    header["alg"] = alg
    signing_input = f"{b64(dump(header))}.{b64(dump(claims))}"
    hs256 = b64(sign(signing_input, "HS256", SECRET))
    for forged in (f"{signing_input}.", signing_input, f"{signing_input}.{hs256}"):
        assert_error(send(forged), 401, "invalid_token")


@pytest.mark.parametrize("alg", [DROP, "", "HS384", "HS512", "RS256", "hs256", ["HS256"], None])
def test_alg_other_than_the_configured_one(env: Env, alg: Any) -> None:
    send, token = env()
    header, claims = parts(token)
    if alg is DROP:
        del header["alg"]
    else:
        header["alg"] = alg
    signer = alg if alg in ("HS384", "HS512") else "HS256"
    assert_error(send(forge(header, claims, alg=signer)), 401, "invalid_token")


def test_empty_and_truncated_signature(env: Env) -> None:
    send, token = env()
    head, payload, signature = token.split(".")
    for bad in ("", signature[:-1], signature[:-2], signature[:-4], signature[:22], "A"):
        assert_error(send(f"{head}.{payload}.{bad}"), 401, "invalid_token")


def test_signature_of_another_token(env: Env) -> None:
    send, token = env()
    header, claims = parts(token)
    other = forge(header, {**claims, "sub": "bob"})
    head, payload, _ = token.split(".")
    assert_error(send(f"{head}.{payload}.{other.split('.')[2]}"), 401, "invalid_token")
    header2, claims2 = parts(other)
    bob = forge(header2, claims2, key="x" * 16 + SECRET[16:])
    assert_error(send(bob), 401, "invalid_token")


def _hmac_secrets(public_key: Any, jwks: dict[str, Any]) -> list[bytes]:
    pem = pem_public(public_key)
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return [pem, pem.strip(), pem.decode().replace("\n", "\r\n").encode(), der, dump(jwks)]


@pytest.mark.parametrize("family", ["RS256", "ES256"])
@pytest.mark.parametrize("hs", ["HS256", "HS384", "HS512"])
def test_hs_signed_with_public_key(
    env: Env, rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey, family: str, hs: str
) -> None:
    """Key confusion: the public key used as an HMAC secret (CVE-2015-9235 family)."""
    private = rsa_key if family == "RS256" else ec_key
    send, token = env(COCART_JWT_ALGORITHM=family, COCART_JWT_PRIVATE_KEY=pem_private(private))
    header, claims = parts(token)
    assert header["alg"] == family
    jwk = json.loads(ALGORITHMS[family].to_jwk(private.public_key()))
    for secret in _hmac_secrets(private.public_key(), {"keys": [jwk]}):
        forged = forge({**header, "alg": hs}, {**claims, "sub": "admin"}, key=secret)
        assert_error(send(forged), 401, "invalid_token")


def test_es256_zero_signature_cve_2022_21449(env: Env, ec_key: ec.EllipticCurvePrivateKey) -> None:
    send, token = env(COCART_JWT_ALGORITHM="ES256", COCART_JWT_PRIVATE_KEY=pem_private(ec_key))
    header, claims = parts(token)
    signing_input = f"{b64(dump(header))}.{b64(dump({**claims, 'sub': 'admin'}))}"
    n = P256_ORDER.to_bytes(32, "big")
    der_zero = bytes([0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00])
    for signature in (bytes(64), n + n, bytes(32) + n, der_zero, bytes(63), bytes(65)):
        assert_error(send(f"{signing_input}.{b64(signature)}"), 401, "invalid_token")
    assert send(f"{signing_input}.{b64(sign(signing_input, 'ES256', ec_key))}").status_code == 200


KIDS = [
    "../../etc/passwd",
    "/dev/null",
    "' OR 1=1 --",
    "k" * 10_000,
    1,
    0,
    1.5,
    True,
    None,
    [],
    ["kid"],
    {"kid": "x"},
    "",
    DROP,
]


@pytest.mark.parametrize("kid", KIDS, ids=lambda k: repr(k)[:20])
def test_kid_is_only_looked_up_in_configured_keys(env: Env, kid: Any) -> None:
    send, token = env(COCART_JWT_MAX_TOKEN_BYTES=65536)
    header, claims = parts(token)
    if kid is DROP:
        del header["kid"]
    else:
        header["kid"] = kid
    assert_error(send(forge(header, claims)), 401, "invalid_token")


def test_kid_must_match_exactly(env: Env) -> None:
    send, token = env()
    header, claims = parts(token)
    kid = header["kid"]
    for near in (kid + " ", " " + kid, kid + "\x00", kid.swapcase(), kid[:-1], kid + kid):
        assert_error(send(forge({**header, "kid": near}, claims)), 401, "invalid_token")


def _certificate(key: rsa.RSAPrivateKey) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "attacker.example")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER)


def test_embedded_keys_are_not_trusted(
    env: Env,
    rsa_key: rsa.RSAPrivateKey,
    attacker_key: rsa.RSAPrivateKey,
    no_network: list[Any],
) -> None:
    send, token = env(COCART_JWT_ALGORITHM="RS256", COCART_JWT_PRIVATE_KEY=pem_private(rsa_key))
    header, claims = parts(token)
    jwk = json.loads(ALGORITHMS["RS256"].to_jwk(attacker_key.public_key()))
    url = "https://attacker.example/jwks.json"
    x5c = base64.b64encode(_certificate(attacker_key)).decode()
    embedded = [
        {"jwk": jwk},
        {"jwk": {**jwk, "kid": header["kid"]}},
        {"jku": url},
        {"x5u": url},
        {"x5c": [x5c]},
        {"jwk": jwk, "jku": url, "x5u": url, "x5c": [x5c]},
    ]
    for extra in embedded:
        for kid in (header["kid"], "attacker"):
            forged_header = {**header, **extra, "kid": kid}
            forged = forge(forged_header, {**claims, "sub": "admin"}, key=attacker_key)
            assert_error(send(forged), 401, "invalid_token")
    # Signed with the real key, the extra headers are ignored: nothing is fetched.
    response = send(forge({**header, "jku": url, "x5u": url}, claims, key=rsa_key))
    assert response.status_code == 200
    assert no_network == []


@pytest.mark.parametrize("crit", [["exp"], [], ["x-custom"], "exp", None])
def test_crit_header_is_refused(env: Env, crit: Any) -> None:
    send, token = env()
    header, claims = parts(token)
    forged = forge({**header, "crit": crit, "x-custom": 1}, claims)
    assert_error(send(forged), 401, "invalid_token")


def test_access_token_sent_to_refresh_route(make_app: Callable[..., Flask]) -> None:
    app = make_app(**NO_LIMITS)
    auth = AuthActions(app.test_client())
    tokens = auth.tokens()
    assert_error(auth.refresh(tokens["access_token"]), 401, "invalid_refresh_token")


@pytest.mark.parametrize("endpoint", ["/me", "/auth/validate-token"])
def test_refresh_token_sent_as_bearer(make_app: Callable[..., Flask], endpoint: str) -> None:
    app = make_app(**NO_LIMITS)
    tokens = AuthActions(app.test_client()).tokens()
    assert tokens["refresh_token"].startswith("rt_")
    send = sender(app.test_client(), endpoint)
    assert_error(send(tokens["refresh_token"]), 401, "invalid_token")
    assert send(tokens["access_token"]).status_code == 200

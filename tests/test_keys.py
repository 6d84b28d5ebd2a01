"""Asymmetric keys, key ids (RFC 7638), key rotation and the JWKS route."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from flask import Flask

from flask_cocart_jwt import ConfigurationError
from flask_cocart_jwt.keys import public_jwk, thumbprint
from tests.conftest import SECRET, AuthActions, assert_error
from tests.security import (
    NO_LIMITS,
    b64,
    forge,
    new_ec,
    new_ed25519,
    new_rsa,
    parts,
    pem_private,
    pem_public,
)

MakeApp = Callable[..., Flask]
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "k", "oth"}

# RFC 7638 section 3.1: the example RSA key and its SHA-256 thumbprint.
RFC7638_N = (
    "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_B"
    "JECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_F"
    "DW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4"
    "vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
)
RFC7638_THUMBPRINT = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


@pytest.fixture(scope="module")
def keys() -> dict[str, Any]:
    """One private key per algorithm, generated once for this module."""
    rsa_key = new_rsa()
    return {
        "RS256": rsa_key,
        "RS512": rsa_key,
        "PS256": rsa_key,
        "ES256": new_ec(ec.SECP256R1()),
        "ES384": new_ec(ec.SECP384R1()),
        "ES512": new_ec(ec.SECP521R1()),
        "EdDSA": new_ed25519(),
    }


@pytest.fixture(scope="module")
def rsa_1024() -> rsa.RSAPrivateKey:
    return new_rsa(1024)


def _uint(value: str) -> int:
    return int.from_bytes(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)), "big")


def _my_thumbprint(key: Any) -> str:
    """RFC 7638, written out independently of the package."""
    public = key.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        numbers = public.public_numbers()
        n = numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")
        e = numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")
        text = f'{{"e":"{b64(e)}","kty":"RSA","n":"{b64(n)}"}}'
    elif isinstance(public, ec.EllipticCurvePublicKey):
        size = (public.curve.key_size + 7) // 8
        crv = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
        nums = public.public_numbers()
        x, y = b64(nums.x.to_bytes(size, "big")), b64(nums.y.to_bytes(size, "big"))
        text = f'{{"crv":"{crv[public.curve.name]}","kty":"EC","x":"{x}","y":"{y}"}}'
    else:
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        text = f'{{"crv":"Ed25519","kty":"OKP","x":"{b64(raw)}"}}'
    return b64(hashlib.sha256(text.encode()).digest())


def test_rfc7638_example_thumbprint() -> None:
    public = rsa.RSAPublicNumbers(e=65537, n=_uint(RFC7638_N)).public_key()
    jwk = public_jwk(public, "RS256")
    assert jwk["kid"] == RFC7638_THUMBPRINT
    assert thumbprint({"kty": "RSA", "n": RFC7638_N, "e": "AQAB"}) == RFC7638_THUMBPRINT


@pytest.mark.parametrize("alg", ["RS256", "RS512", "PS256", "ES256", "ES384", "ES512", "EdDSA"])
def test_each_algorithm(make_app: MakeApp, keys: dict[str, Any], alg: str) -> None:
    key = keys[alg]
    app = make_app(COCART_JWT_ALGORITHM=alg, COCART_JWT_PRIVATE_KEY=pem_private(key).decode())
    auth = AuthActions(app.test_client())
    token = auth.tokens()["access_token"]
    header, _ = parts(token)
    assert header == {"alg": alg, "typ": "at+jwt", "kid": _my_thumbprint(key)}
    assert auth.get("/me", token).status_code == 200
    # Interoperable: PyJWT verifies it with the public key alone.
    claims = jwt.decode(token, pem_public(key), algorithms=[alg])
    assert claims["sub"] == "alice"
    jwks = app.test_client().get("/auth/jwks.json").json
    assert [k["kid"] for k in jwks["keys"]] == [header["kid"]]
    assert not PRIVATE_MEMBERS & set(jwks["keys"][0])
    assert jwks["keys"][0]["alg"] == alg
    assert jwks["keys"][0]["use"] == "sig"


def test_matching_public_key_and_bytes_pem(make_app: MakeApp, keys: dict[str, Any]) -> None:
    make_app(
        COCART_JWT_ALGORITHM="ES256",
        COCART_JWT_PRIVATE_KEY=pem_private(keys["ES256"]),
        COCART_JWT_PUBLIC_KEY=pem_public(keys["ES256"]).decode(),
    )


def test_public_key_not_matching(make_app: MakeApp, keys: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError, match="not the public half"):
        make_app(
            COCART_JWT_ALGORITHM="RS256",
            COCART_JWT_PRIVATE_KEY=pem_private(keys["RS256"]),
            COCART_JWT_PUBLIC_KEY=pem_public(new_rsa()),
        )
    with pytest.raises(ConfigurationError, match="not the public half"):
        make_app(
            COCART_JWT_ALGORITHM="ES256",
            COCART_JWT_PRIVATE_KEY=pem_private(keys["ES256"]),
            COCART_JWT_PUBLIC_KEY=pem_public(keys["ES384"]),
        )


@pytest.mark.parametrize("alg", ["RS256", "PS256", "RS512"])
def test_small_rsa_key_refused(make_app: MakeApp, rsa_1024: rsa.RSAPrivateKey, alg: str) -> None:
    with pytest.raises(ConfigurationError, match="1024-bit RSA key"):
        make_app(COCART_JWT_ALGORITHM=alg, COCART_JWT_PRIVATE_KEY=pem_private(rsa_1024))


@pytest.mark.parametrize(
    ("alg", "key_alg"),
    [
        ("ES256", "ES384"),
        ("ES256", "ES512"),
        ("ES384", "ES256"),
        ("ES512", "ES256"),
        ("ES256", "RS256"),
        ("ES256", "EdDSA"),
        ("RS256", "ES256"),
        ("PS256", "EdDSA"),
        ("EdDSA", "ES256"),
        ("EdDSA", "RS256"),
    ],
)
def test_key_of_the_wrong_kind(
    make_app: MakeApp, keys: dict[str, Any], alg: str, key_alg: str
) -> None:
    with pytest.raises(ConfigurationError, match="COCART_JWT_PRIVATE_KEY"):
        make_app(COCART_JWT_ALGORITHM=alg, COCART_JWT_PRIVATE_KEY=pem_private(keys[key_alg]))


def test_secp256k1_refused(make_app: MakeApp) -> None:
    with pytest.raises(ConfigurationError):
        make_app(
            COCART_JWT_ALGORITHM="ES256",
            COCART_JWT_PRIVATE_KEY=pem_private(new_ec(ec.SECP256K1())),
        )


@pytest.mark.parametrize("value", [None, "", "not a pem", b"-----BEGIN PRIVATE KEY-----\nxx\n", 5])
def test_bad_private_key(make_app: MakeApp, value: Any) -> None:
    with pytest.raises(ConfigurationError, match="COCART_JWT_PRIVATE_KEY"):
        make_app(COCART_JWT_ALGORITHM="RS256", COCART_JWT_PRIVATE_KEY=value)


def test_encrypted_or_public_pem_as_private_key(make_app: MakeApp, keys: dict[str, Any]) -> None:
    encrypted = keys["ES256"].private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase"),
    )
    for pem in (encrypted, pem_public(keys["ES256"])):
        with pytest.raises(ConfigurationError, match="COCART_JWT_PRIVATE_KEY"):
            make_app(COCART_JWT_ALGORITHM="ES256", COCART_JWT_PRIVATE_KEY=pem)


def test_hs_jwks_is_empty_and_has_no_secret(make_app: MakeApp) -> None:
    response = make_app().test_client().get("/auth/jwks.json")
    assert response.status_code == 200
    assert response.json == {"keys": []}
    assert SECRET not in response.get_data(as_text=True)


def test_rotation_with_old_public_key(make_app: MakeApp, keys: dict[str, Any]) -> None:
    old_key, new_key = keys["RS256"], new_rsa()
    old_app = make_app(COCART_JWT_ALGORITHM="RS256", COCART_JWT_PRIVATE_KEY=pem_private(old_key))
    old_token = AuthActions(old_app.test_client()).tokens()["access_token"]
    old_kid = parts(old_token)[0]["kid"]
    new_app = make_app(
        **NO_LIMITS,
        COCART_JWT_ALGORITHM="RS256",
        COCART_JWT_PRIVATE_KEY=pem_private(new_key),
        COCART_JWT_DECODE_KEYS={old_kid: pem_public(old_key).decode()},
    )
    auth = AuthActions(new_app.test_client())
    assert auth.get("/me", old_token).status_code == 200
    assert auth.post("/auth/validate-token", old_token).status_code == 200
    new_token = auth.tokens()["access_token"]
    assert parts(new_token)[0]["kid"] == _my_thumbprint(new_key)
    assert auth.get("/me", new_token).status_code == 200
    header, claims = parts(old_token)
    for kid in ("unknown", _my_thumbprint(new_key)):
        forged = forge({**header, "kid": kid}, claims, key=old_key)
        assert_error(auth.get("/me", forged), 401, "invalid_token")
    jwks = new_app.test_client().get("/auth/jwks.json").json
    assert {k["kid"] for k in jwks["keys"]} == {old_kid, _my_thumbprint(new_key)}
    assert all(not PRIVATE_MEMBERS & set(k) for k in jwks["keys"])
    assert json.dumps(jwks).count('"n"') == 2


def test_rotation_with_old_secret(make_app: MakeApp) -> None:
    old_app = make_app()
    old_token = AuthActions(old_app.test_client()).tokens()["access_token"]
    old_kid = parts(old_token)[0]["kid"]
    new_secret = "new-secret-" + "0123456789abcdefghijklmnopqrstuvwxyz"
    new_app = make_app(COCART_JWT_SECRET_KEY=new_secret, COCART_JWT_DECODE_KEYS={old_kid: SECRET})
    auth = AuthActions(new_app.test_client())
    assert auth.get("/me", old_token).status_code == 200
    assert parts(auth.tokens()["access_token"])[0]["kid"] != old_kid
    assert new_app.test_client().get("/auth/jwks.json").json == {"keys": []}
    without = make_app(COCART_JWT_SECRET_KEY=new_secret)
    assert_error(AuthActions(without.test_client()).get("/me", old_token), 401, "invalid_token")


def test_old_key_of_another_family_stays_bound_to_it(
    make_app: MakeApp, keys: dict[str, Any]
) -> None:
    """An old HS256 secret in an RS256 app verifies only HS256 tokens of its kid."""
    old_token = AuthActions(make_app().test_client()).tokens()["access_token"]
    old_kid = parts(old_token)[0]["kid"]
    app = make_app(
        COCART_JWT_ALGORITHM="RS256",
        COCART_JWT_PRIVATE_KEY=pem_private(keys["RS256"]),
        COCART_JWT_DECODE_KEYS={old_kid: {"algorithm": "HS256", "key": SECRET}},
    )
    auth = AuthActions(app.test_client())
    assert auth.get("/me", old_token).status_code == 200
    rs_kid = _my_thumbprint(keys["RS256"])
    header, claims = parts(old_token)
    forged = forge({**header, "kid": rs_kid}, claims)  # HS256 under the RSA kid
    assert_error(auth.get("/me", forged), 401, "invalid_token")
    forged = forge({**header, "alg": "RS256"}, claims, key=keys["RS256"])
    assert_error(auth.get("/me", forged), 401, "invalid_token")


@pytest.mark.parametrize(
    "decode_keys",
    [
        {"old": "short"},
        {"old": "a" * 64},
        {"": SECRET},
        {5: SECRET},
        {"k" * 129: SECRET},
        {"old": {"algorithm": "none", "key": SECRET}},
        {"old": {"algorithm": 5, "key": SECRET}},
        {"old": {"algorithm": "RS256", "key": "not a pem"}},
        {"old": None},
    ],
    ids=repr,
)
def test_bad_decode_keys(make_app: MakeApp, decode_keys: dict[Any, Any]) -> None:
    with pytest.raises(ConfigurationError, match="COCART_JWT_DECODE_KEYS"):
        make_app(COCART_JWT_DECODE_KEYS=decode_keys)


def test_decode_key_cannot_reuse_the_current_kid(make_app: MakeApp) -> None:
    with pytest.raises(ConfigurationError, match="already used"):
        make_app(COCART_JWT_KEY_ID="current", COCART_JWT_DECODE_KEYS={"current": SECRET})


def test_key_id_setting(make_app: MakeApp, keys: dict[str, Any]) -> None:
    app = make_app(
        COCART_JWT_ALGORITHM="EdDSA",
        COCART_JWT_PRIVATE_KEY=pem_private(keys["EdDSA"]),
        COCART_JWT_KEY_ID="2024-01",
    )
    token = AuthActions(app.test_client()).tokens()["access_token"]
    assert parts(token)[0]["kid"] == "2024-01"
    assert app.test_client().get("/auth/jwks.json").json["keys"][0]["kid"] == "2024-01"


def test_secret_kid_reveals_nothing(make_app: MakeApp) -> None:
    token = AuthActions(make_app().test_client()).tokens()["access_token"]
    kid = parts(token)[0]["kid"]
    assert kid not in (SECRET, b64(SECRET.encode()), b64(hashlib.sha256(SECRET.encode()).digest()))

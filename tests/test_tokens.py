"""The token codec on its own: ``encode_access_token`` and ``decode_access_token``."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from flask_cocart_jwt.config import Settings, load_settings
from flask_cocart_jwt.exceptions import AuthError, InvalidToken, TokenExpired
from flask_cocart_jwt.tokens import (
    MAX_JSON_DEPTH,
    RESERVED_CLAIMS,
    decode_access_token,
    encode_access_token,
)
from tests.conftest import SECRET
from tests.security import b64, dump, forge, parts

NOW = 1_900_000_000


def settings_for(tmp_path: Path, **config: Any) -> Settings:
    return load_settings({"COCART_JWT_SECRET_KEY": SECRET, **config}, str(tmp_path))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return settings_for(tmp_path)


def issue(settings: Settings, **kwargs: Any) -> str:
    options: dict[str, Any] = {"identity": "alice", "session_id": "s1", "fresh": True, "now": NOW}
    token, _ = encode_access_token(settings, **{**options, **kwargs})
    return token


def test_round_trip(settings: Settings) -> None:
    token, claims = encode_access_token(
        settings, identity="alice", session_id="s1", fresh=False, now=NOW
    )
    header, payload = parts(token)
    assert header == {"alg": "HS256", "typ": "at+jwt", "kid": settings.keyring.signing_kid}
    assert payload == claims
    assert set(claims) == {"sub", "iat", "nbf", "exp", "jti", "sid", "fresh"}
    assert (claims["iat"], claims["nbf"], claims["exp"]) == (NOW, NOW, NOW + 900)
    assert decode_access_token(token, settings, NOW) == claims
    assert claims["fresh"] is False


def test_jti_is_unique(settings: Settings) -> None:
    jtis = {parts(issue(settings))[1]["jti"] for _ in range(50)}
    assert len(jtis) == 50


def test_reserved_claims_cannot_be_overridden(settings: Settings) -> None:
    extra = dict.fromkeys(RESERVED_CLAIMS, "evil") | {"role": "admin"}
    claims = parts(issue(settings, additional_claims=extra))[1]
    assert claims["role"] == "admin"
    assert claims["sub"] == "alice"
    assert claims["sid"] == "s1"
    assert claims["exp"] == NOW + 900
    assert "iss" not in claims
    assert "aud" not in claims


def test_issuer_and_audience(tmp_path: Path) -> None:
    one = settings_for(tmp_path, COCART_JWT_ISSUER="https://i.example", COCART_JWT_AUDIENCE="a")
    claims = parts(issue(one))[1]
    assert (claims["iss"], claims["aud"]) == ("https://i.example", "a")
    two = settings_for(tmp_path, COCART_JWT_AUDIENCE=["a", "b"])
    token = issue(two)
    assert parts(token)[1]["aud"] == ["a", "b"]
    assert decode_access_token(token, two, NOW)["aud"] == ["a", "b"]


def test_expired_and_not_yet_valid(settings: Settings) -> None:
    token = issue(settings)
    assert decode_access_token(token, settings, NOW + 899.999)["sub"] == "alice"
    with pytest.raises(TokenExpired):
        decode_access_token(token, settings, NOW + 900)
    with pytest.raises(InvalidToken):
        decode_access_token(token, settings, NOW - 0.001)


def test_leeway(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, COCART_JWT_LEEWAY=30)
    token = issue(settings)
    decode_access_token(token, settings, NOW - 30)
    decode_access_token(token, settings, NOW + 929)
    with pytest.raises(TokenExpired):
        decode_access_token(token, settings, NOW + 930)
    with pytest.raises(InvalidToken):
        decode_access_token(token, settings, NOW - 31)


def test_errors_are_distinct_auth_errors() -> None:
    assert issubclass(InvalidToken, AuthError)
    assert issubclass(TokenExpired, AuthError)
    assert not issubclass(TokenExpired, InvalidToken)
    assert (InvalidToken.error, TokenExpired.error) == ("invalid_token", "token_expired")


GARBAGE = [
    "",
    ".",
    "..",
    "a.b.c",
    "\x00.\x00.\x00",
    "é.é.é",
    "a.b.c\n",
    "\na.b.c",
    "a\n.b.c",
    "a.b.c ",
    "\uff41.\uff42.\uff43",
    "\u0661\u0662.\u0663.\u0664",
    "\ud800.a.b",
    "eyJ.eyJ.eyJ",
]


@pytest.mark.parametrize("token", GARBAGE, ids=repr)
def test_garbage_is_invalid_token(settings: Settings, token: str) -> None:
    with pytest.raises(InvalidToken):
        decode_access_token(token, settings, NOW)


def test_newline_and_non_ascii_inside_a_valid_token(settings: Settings) -> None:
    token = issue(settings)
    head, payload, signature = token.split(".")
    for bad in (f"{head}\n.{payload}.{signature}", f"{head}.{payload}.{signature}\n"):
        with pytest.raises(InvalidToken):
            decode_access_token(bad, settings, NOW)
    with pytest.raises(InvalidToken):
        decode_access_token(f"{head}.{payload}.{signature[:-1]}\u0661", settings, NOW)


def test_size_cap(settings: Settings) -> None:
    token = issue(settings)
    decode_access_token(token, replace(settings, max_token_bytes=len(token)), NOW)
    with pytest.raises(InvalidToken):
        decode_access_token(token, replace(settings, max_token_bytes=len(token) - 1), NOW)


def test_json_depth_cap(settings: Settings) -> None:
    header, claims = parts(issue(settings))
    ok = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    raw = dump(claims)[:-1] + b',"x":' + ok[1:-1].encode() + b"}"
    assert decode_access_token(forge(header, b64(raw)), settings, NOW)["sub"] == "alice"
    too_deep = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    raw = dump(claims)[:-1] + b',"x":' + too_deep.encode() + b"}"
    with pytest.raises(InvalidToken):
        decode_access_token(forge(header, b64(raw)), settings, NOW)
    # Brackets inside strings (even escaped quotes) do not count as nesting.
    strings = {"x": '\\"[[[' * 100, "y": "{" * 200}
    assert decode_access_token(forge(header, {**claims, **strings}), settings, NOW)["y"]


def test_huge_numbers(settings: Settings) -> None:
    header, claims = parts(issue(settings))

    def with_exp(literal: bytes) -> str:
        raw = dump({**claims, "exp": 7}).replace(b'"exp":7', b'"exp":' + literal)
        return forge(header, b64(raw))

    for literal in (b"1" + b"0" * 5000, b"-" + b"9" * 5000, b"1" * 4300 + b".5"):
        with pytest.raises(InvalidToken):
            decode_access_token(with_exp(literal), settings, NOW)
    assert decode_access_token(with_exp(b"1e308"), settings, NOW)["exp"] == 1e308
    with pytest.raises(TokenExpired):
        decode_access_token(with_exp(b"-1e308"), settings, NOW)

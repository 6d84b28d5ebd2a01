"""``decode_token``: the verified claims of an access token outside a request.

It goes through the service's verifier, so it refuses exactly what a
protected view refuses, with the same exceptions.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from flask import Flask

import flask_cocart_jwt
from flask_cocart_jwt import (
    InvalidToken,
    SessionRevoked,
    TokenExpired,
    decode_token,
)
from tests.conftest import AuthActions

AppFactory = Callable[..., Flask]


def _tokens(app: Flask) -> dict[str, Any]:
    return AuthActions(app.test_client()).tokens()


def test_valid_token_gives_the_claims_a_view_sees(app: Flask) -> None:
    tokens = _tokens(app)
    seen = AuthActions(app.test_client()).get("/me", tokens["access_token"]).json["claims"]
    with app.app_context():
        claims = decode_token(tokens["access_token"])
    assert claims == seen
    assert claims["sub"] == "alice"
    assert claims["sid"] == tokens["session_id"]
    assert flask_cocart_jwt.decode_token is decode_token


def test_expired_token(app: Flask) -> None:
    tokens = _tokens(app)
    with app.app_context():
        exp = decode_token(tokens["access_token"])["exp"]
        with time_machine.travel(timedelta(minutes=16)), pytest.raises(TokenExpired) as caught:
            decode_token(tokens["access_token"])
    assert caught.value.expired_at == exp


def test_forged_tokens(app: Flask, make_app: AppFactory) -> None:
    tokens = _tokens(app)
    head, payload, signature = tokens["access_token"].split(".")
    other_app = make_app(COCART_JWT_SECRET_KEY="another-secret-0123456789-abcdefghijklmnop")
    foreign = _tokens(other_app)["access_token"]
    forged = [
        f"{head}.{payload}.{('A' if signature[0] != 'A' else 'B') + signature[1:]}",
        f"{head}.{foreign.split('.')[1]}.{signature}",
        foreign,  # signed with another app's key
        "",
        "not.a.token",
        tokens["refresh_token"],
    ]
    with app.app_context():
        for token in forged:
            with pytest.raises(InvalidToken):
                decode_token(token)
        for value in (None, 42, tokens["access_token"].encode()):
            with pytest.raises(InvalidToken):
                decode_token(value)  # type: ignore[arg-type]


def test_revoked_session(app: Flask) -> None:
    tokens = _tokens(app)
    revoked = app.test_client().post("/auth/revoke", data={"token": tokens["refresh_token"]})
    assert revoked.json == {"revoked": True}
    with app.app_context(), pytest.raises(SessionRevoked):
        decode_token(tokens["access_token"])


def test_counts_against_no_limit(make_app: AppFactory) -> None:
    app = make_app(COCART_JWT_LIMIT_PROTECTED_PER_TOKEN="1 per minute")
    token = _tokens(app)["access_token"]
    with app.app_context():
        for _ in range(3):
            assert decode_token(token)["sub"] == "alice"


def test_needs_an_app_context(app: Flask) -> None:
    token = _tokens(app)["access_token"]
    with pytest.raises(RuntimeError, match="app context"):
        decode_token(token)
    with Flask("bare").app_context(), pytest.raises(RuntimeError, match="init_app"):
        decode_token(token)

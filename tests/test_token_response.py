"""``TokenPair.to_response``: the token response of the user's own routes."""

from __future__ import annotations

import json

from flask import Flask

from flask_cocart_jwt import TokenPair
from tests.conftest import TOKEN_FIELDS, User


def _pair(app: Flask) -> TokenPair:
    with app.test_request_context():
        pair: TokenPair = app.extensions["cocart_jwt"].issue_tokens(User("carol"))
    return pair


def test_body_and_headers(app: Flask) -> None:
    pair = _pair(app)
    with app.app_context():
        response = pair.to_response()
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Pragma"] == "no-cache"
    body = json.loads(response.get_data())
    assert body == pair.to_dict()
    assert set(body) == TOKEN_FIELDS
    assert list(body) == sorted(body)


def test_status_and_extra_members(app: Flask) -> None:
    pair = _pair(app)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    with app.app_context():
        response = pair.to_response(
            201, extra={"user": {"id": "carol"}, "access_token": "spoofed", "token_type": "x"}
        )
    assert response.status_code == 201
    body = json.loads(response.get_data())
    # The token fields first and never replaced; the extra members after them.
    assert list(body) == [*pair.to_dict(), "user"]
    assert body["access_token"] == pair.access_token
    assert body["token_type"] == "Bearer"
    assert body["user"] == {"id": "carol"}


def test_to_dict_keys_are_in_the_order_flask_sends_them() -> None:
    pair = TokenPair("a.b.c", 900, "rt_x", 60, "sid")
    assert list(pair.to_dict()) == sorted(pair.to_dict())


def test_login_sends_the_same_response(app: Flask) -> None:
    """The built-in login is ``to_response``: same members, same headers."""
    login = app.test_client().post(
        "/auth/login", json={"username": "alice", "password": "wonderland"}
    )
    with app.app_context():
        own = _pair(app).to_response()
    assert list(json.loads(login.get_data())) == list(json.loads(own.get_data()))
    for header in ("Cache-Control", "Pragma", "Content-Type"):
        assert login.headers[header] == own.headers[header]

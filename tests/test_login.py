"""``POST /login``: JSON, form fields and HTTP Basic; the token response."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from flask_cocart_jwt import CoCartJWT, tokens_issued
from tests.conftest import NO_LIMITS, PASSWORDS, TOKEN_FIELDS, AuthActions, assert_error


def assert_token_response(response: Any) -> dict[str, Any]:
    """Assert the exact shape of the token response and return its body."""
    assert response.status_code == 200, response.get_data()[:300]
    assert response.is_json
    assert response.headers["Cache-Control"] == "no-store"
    body: dict[str, Any] = response.json
    assert set(body) == TOKEN_FIELDS
    assert body["token_type"] == "Bearer"
    assert type(body["expires_in"]) is int
    assert body["expires_in"] == 900
    assert type(body["refresh_token_expires_in"]) is int
    assert body["refresh_token_expires_in"] == 30 * 24 * 3600
    assert isinstance(body["access_token"], str)
    assert body["access_token"].count(".") == 2
    assert isinstance(body["refresh_token"], str)
    assert body["refresh_token"].startswith("rt_")
    assert len(body["refresh_token"]) >= 3 + 43  # token_urlsafe(32)
    assert isinstance(body["session_id"], str)
    assert body["session_id"]
    return body


def test_login_json(auth: AuthActions) -> None:
    body = assert_token_response(auth.login("alice"))
    me = auth.get("/me", body["access_token"])
    assert me.status_code == 200
    claims = me.json["claims"]
    assert claims["sub"] == "alice"
    assert claims["sid"] == body["session_id"]
    assert claims["fresh"] is True
    assert claims["exp"] - claims["iat"] == 900


def test_token_type_follows_the_header_type(make_app: Callable[..., Flask]) -> None:
    app = make_app(COCART_JWT_HEADER_TYPE="JWT", **NO_LIMITS)
    body = AuthActions(app.test_client()).tokens()
    assert body["token_type"] == "JWT"


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=utf-8", "application/x+json"]
)
def test_login_json_content_types(client: FlaskClient, content_type: str) -> None:
    response = client.post(
        "/auth/login",
        data='{"username": "bob", "password": "builder"}',
        content_type=content_type,
    )
    assert_token_response(response)


def test_login_form_urlencoded(client: FlaskClient) -> None:
    response = client.post("/auth/login", data={"username": "alice", "password": "wonderland"})
    assert response.request.content_type == "application/x-www-form-urlencoded"
    assert_token_response(response)


def test_login_form_multipart(client: FlaskClient) -> None:
    response = client.post(
        "/auth/login",
        data={"username": "bob", "password": "builder"},
        content_type="multipart/form-data",
    )
    assert_token_response(response)


def test_login_http_basic(client: FlaskClient) -> None:
    assert_token_response(client.post("/auth/login", auth=("alice", "wonderland")))
    raw = base64.b64encode(b"bob:builder").decode()
    assert_token_response(client.post("/auth/login", headers={"Authorization": f"Basic {raw}"}))


def test_login_http_basic_wrong_password(client: FlaskClient) -> None:
    assert_error(client.post("/auth/login", auth=("alice", "nope")), 401, "invalid_credentials")


@pytest.mark.parametrize(
    "header",
    [
        "Basic",
        "Basic !!!",
        "Basic " + base64.b64encode(b"no-colon").decode(),
        "Digest x",
        "Basic \x80",
        "Basic \xe9t\xe9:pw",
        "Basic YWxpY2U6\xff",
    ],
)
def test_login_malformed_basic(client: FlaskClient, header: str) -> None:
    response = client.post("/auth/login", headers={"Authorization": header})
    assert_error(response, 400, "invalid_request")


def test_login_basic_with_empty_password(client: FlaskClient) -> None:
    assert_error(client.post("/auth/login", auth=("alice", "")), 400, "invalid_request")


def test_unknown_user_and_wrong_password_look_the_same(auth: AuthActions) -> None:
    unknown = auth.login("mallory", "wonderland")
    wrong = auth.login("alice", "not-the-password")
    for response in (unknown, wrong):
        assert_error(response, 401, "invalid_credentials")
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="api"'
        assert response.headers["Cache-Control"] == "no-store"
    assert unknown.get_data() == wrong.get_data()
    assert dict(unknown.headers) == dict(wrong.headers)
    assert "mallory" not in unknown.get_data(as_text=True)


def test_each_login_opens_a_new_session(auth: AuthActions) -> None:
    first, second = auth.tokens(), auth.tokens()
    assert first["session_id"] != second["session_id"]
    assert first["access_token"] != second["access_token"]
    assert first["refresh_token"] != second["refresh_token"]


def test_extra_json_fields_are_ignored(client: FlaskClient) -> None:
    response = client.post(
        "/auth/login",
        json={"username": "alice", "password": PASSWORDS["alice"], "remember": True, "sub": "x"},
    )
    body = assert_token_response(response)
    assert "remember" not in body


def test_credentials_are_passed_verbatim(make_app: Callable[..., Flask]) -> None:
    seen: list[tuple[str, str]] = []
    app = make_app(COCART_JWT_RATELIMIT_ENABLED=False)
    ext: CoCartJWT = app.extensions["cocart_jwt"]

    @ext.credentials_checker
    def check(username: str, password: str) -> str:
        seen.append((username, password))
        return "someone"

    client = app.test_client()
    for username, password in [
        (" Alice ", " pw "),
        ("é\u00e9漢", "p:a:ss"),
        ("a" * 255, "b" * 1024),
    ]:
        assert_token_response(
            client.post("/auth/login", json={"username": username, "password": password})
        )
    assert_token_response(client.post("/auth/login", auth=("u", "p:a:ss")))
    assert seen == [
        (" Alice ", " pw "),
        ("é\u00e9漢", "p:a:ss"),
        ("a" * 255, "b" * 1024),
        ("u", "p:a:ss"),
    ]


def test_tokens_issued_signal(app: Flask, auth: AuthActions) -> None:
    received: list[tuple[Any, dict[str, Any]]] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        received.append((sender, kwargs))

    with tokens_issued.connected_to(receiver, app):
        body = auth.tokens("bob")
        auth.login("bob", "wrong")
    assert received == [(app, {"identity": "bob", "session_id": body["session_id"]})]
    for _, kwargs in received:
        assert body["access_token"] not in repr(kwargs)
        assert body["refresh_token"] not in repr(kwargs)


def test_signal_of_another_app_is_not_received(
    make_app: Callable[..., Flask], auth: AuthActions
) -> None:
    other = make_app()
    received: list[Any] = []
    with tokens_issued.connected_to(lambda sender, **kw: received.append(sender), other):
        auth.tokens()
    assert received == []


def test_login_only_accepts_post(client: FlaskClient) -> None:
    assert client.get("/auth/login").status_code == 405
    assert client.put("/auth/login", json={}).status_code == 405

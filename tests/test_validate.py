"""``POST /validate-token``: is this Bearer access token valid?"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import time_machine
from flask import Flask
from flask.testing import FlaskClient

from flask_cocart_jwt import token_validated
from tests.conftest import AuthActions, assert_error

URL = "/auth/validate-token"
NOW = 1_800_000_000
INVALID = 'Bearer error="invalid_token"'


def test_valid_token(auth: AuthActions) -> None:
    with time_machine.travel(NOW, tick=False):
        tokens = auth.tokens()
        response = auth.post(URL, tokens["access_token"])
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert response.json == {
        "valid": True,
        "identity": "alice",
        "session_id": tokens["session_id"],
        "expires_at": NOW + 900,
    }
    assert type(response.json["expires_at"]) is int


def test_valid_after_refresh(auth: AuthActions) -> None:
    tokens = auth.tokens("bob")
    refreshed = auth.refresh(tokens["refresh_token"]).json
    response = auth.post(URL, refreshed["access_token"])
    assert response.json["identity"] == "bob"
    assert response.json["session_id"] == tokens["session_id"]


def test_missing_token(client: FlaskClient) -> None:
    response = client.post(URL)
    assert_error(response, 401, "missing_token")
    assert response.headers["WWW-Authenticate"].startswith("Bearer realm=")
    assert "error=" not in response.headers["WWW-Authenticate"]
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    "header",
    [
        "garbage",
        "Bearer",
        "Bearer ",
        "Bearer    ",
        "Basic YWxpY2U6d29uZGVybGFuZA==",
        "Token abc.def.ghi",
        "Bearerabc.def.ghi",
    ],
)
def test_no_bearer_token_is_missing_token(client: FlaskClient, header: str) -> None:
    response = client.post(URL, headers={"Authorization": header})
    assert_error(response, 401, "missing_token")
    assert "error=" not in response.headers["WWW-Authenticate"]


def test_scheme_is_case_insensitive(auth: AuthActions) -> None:
    token = auth.tokens()["access_token"]
    for scheme in ("bearer", "BEARER", "Bearer"):
        response = auth.client.post(URL, headers={"Authorization": f"{scheme} {token}"})
        assert response.status_code == 200, scheme
    response = auth.client.post(URL, headers={"Authorization": f"Bearer   {token}  "})
    assert response.status_code == 200


@pytest.mark.parametrize(
    "token",
    [
        "garbage",
        "a.b.c",
        "a.b",
        "a.b.c.d",
        "eyJ.eyJ.",
        "..",
        "two words",
        "x" * 10_000,
        "Ã©Ã©.Ã©.Ã©",
    ],
)
def test_malformed_token_is_invalid(client: FlaskClient, token: str) -> None:
    response = client.post(URL, headers={"Authorization": f"Bearer {token}"})
    assert_error(response, 401, "invalid_token")
    assert response.headers["WWW-Authenticate"] == INVALID


def test_tampered_and_refresh_tokens_are_invalid(auth: AuthActions) -> None:
    tokens = auth.tokens()
    head, payload, sig = tokens["access_token"].split(".")
    other = auth.tokens("bob")["access_token"].split(".")
    for token in (
        f"{head}.{other[1]}.{sig}",
        f"{head}.{payload}.{other[2]}",
        f"{head}.{payload}.",
        tokens["refresh_token"],
    ):
        assert_error(auth.post(URL, token), 401, "invalid_token")


def test_token_from_another_app_is_invalid(
    make_app: Callable[..., Flask], auth: AuthActions
) -> None:
    other = make_app(COCART_JWT_SECRET_KEY="another-secret-abcdefghijklmnopqrstuvwxyz-0123")
    foreign = AuthActions(other.test_client()).tokens()["access_token"]
    assert_error(auth.post(URL, foreign), 401, "invalid_token")


def test_token_expired(auth: AuthActions) -> None:
    with time_machine.travel(NOW, tick=False):
        token = auth.tokens()["access_token"]
    with time_machine.travel(NOW + 899, tick=False):
        assert auth.post(URL, token).status_code == 200
    with time_machine.travel(NOW + 900, tick=False):
        response = auth.post(URL, token)
    assert_error(response, 401, "token_expired")
    assert response.headers["WWW-Authenticate"] == INVALID


def test_token_not_yet_valid(auth: AuthActions) -> None:
    with time_machine.travel(NOW + 3600, tick=False):
        token = auth.tokens()["access_token"]
    with time_machine.travel(NOW, tick=False):
        assert_error(auth.post(URL, token), 401, "invalid_token")


def test_leeway(make_app: Callable[..., Flask]) -> None:
    app = make_app(COCART_JWT_LEEWAY=30, COCART_JWT_RATELIMIT_ENABLED=False)
    auth = AuthActions(app.test_client())
    with time_machine.travel(NOW, tick=False):
        token = auth.tokens()["access_token"]
    with time_machine.travel(NOW + 929, tick=False):
        assert auth.post(URL, token).status_code == 200
    with time_machine.travel(NOW + 930, tick=False):
        assert_error(auth.post(URL, token), 401, "token_expired")


def test_revoked_session(auth: AuthActions) -> None:
    tokens = auth.tokens()
    assert auth.client.post("/auth/revoke", json={"refresh_token": tokens["refresh_token"]}).json
    assert_error(auth.post(URL, tokens["access_token"]), 401, "session_revoked")


def test_token_validated_signal(app: Flask, auth: AuthActions) -> None:
    received: list[tuple[Any, dict[str, Any]]] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        received.append((sender, kwargs))

    tokens = auth.tokens()
    with token_validated.connected_to(receiver, app):
        auth.post(URL, tokens["access_token"])
        auth.post(URL, "garbage")
        auth.client.post(URL)
        auth.get("/me", tokens["access_token"])  # protected views do not send it
    assert received == [(app, {"identity": "alice", "session_id": tokens["session_id"]})]


def test_validate_needs_no_body(auth: AuthActions) -> None:
    token = auth.tokens()["access_token"]
    for kwargs in ({}, {"json": {"x": 1}}, {"data": "not json"}):
        assert auth.post(URL, token, **kwargs).status_code == 200


def test_validate_only_accepts_post(client: FlaskClient) -> None:
    assert client.get(URL).status_code == 405

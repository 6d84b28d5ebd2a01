"""Errors carry what a handler needs, and every error goes through ``error_response_loader``."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import time_machine
from flask import Flask, Response, jsonify

from flask_cocart_jwt import (
    AuthError,
    CoCartJWT,
    MethodNotAllowed,
    NotFound,
    RateLimited,
    RefreshTokenReused,
    TokenExpired,
)
from tests.conftest import AuthActions


@pytest.fixture
def seen(make_app: Callable[..., Flask]) -> tuple[AuthActions, list[AuthError]]:
    """An app whose ``error_response_loader`` records every error it renders."""
    ext = CoCartJWT()
    errors: list[AuthError] = []

    @ext.error_response_loader
    def render(error: AuthError) -> Response:
        errors.append(error)
        response = jsonify(custom=error.error)
        response.status_code = error.status_code
        response.headers.update(error.headers)
        return response

    app = make_app(
        extension=ext,
        COCART_JWT_RATELIMIT_ENABLED=True,
        COCART_JWT_LIMIT_LOGIN_PER_IP="3 per minute",
    )
    return AuthActions(app.test_client()), errors


def test_refresh_token_reused_names_the_revoked_session(
    seen: tuple[AuthActions, list[AuthError]],
) -> None:
    auth, errors = seen
    tokens = auth.tokens()
    first = auth.refresh(tokens["refresh_token"]).json
    auth.refresh(first["refresh_token"])
    response = auth.refresh(tokens["refresh_token"])  # the grandparent: a replay
    assert response.json == {"custom": "refresh_token_reused"}
    (error,) = errors
    assert isinstance(error, RefreshTokenReused)
    assert error.session_id == tokens["session_id"]


def test_token_expired_says_when(seen: tuple[AuthActions, list[AuthError]]) -> None:
    auth, errors = seen
    tokens = auth.tokens()
    claims = auth.get("/me", tokens["access_token"]).json["claims"]
    with time_machine.travel(time.time() + 3600, tick=False):
        response = auth.get("/me", tokens["access_token"])
    assert response.status_code == 401
    (error,) = errors
    assert isinstance(error, TokenExpired)
    assert error.expired_at == claims["exp"]


def test_rate_limited_names_the_limit_and_the_wait(
    seen: tuple[AuthActions, list[AuthError]],
) -> None:
    auth, errors = seen
    for _ in range(3):
        auth.login()
    response = auth.login()
    assert response.status_code == 429
    (error,) = errors
    assert isinstance(error, RateLimited)
    assert error.scope == "login_per_ip"
    assert isinstance(error.retry_after, int)
    assert 0 < error.retry_after <= 60
    assert response.headers["Retry-After"] == str(error.retry_after)


def test_unknown_session_is_a_not_found_error(
    seen: tuple[AuthActions, list[AuthError]],
) -> None:
    auth, errors = seen
    tokens = auth.tokens()
    response = auth.client.delete(
        "/auth/sessions/no-such-session",
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
    )
    assert (response.status_code, response.json) == (404, {"custom": "not_found"})
    assert [type(e) for e in errors] == [NotFound]


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", "/auth/login", "POST, OPTIONS"),
        ("POST", "/auth/jwks.json", "GET, OPTIONS, HEAD"),
        ("GET", "/auth/revoke", "POST, OPTIONS"),
    ],
)
def test_wrong_method_is_a_method_not_allowed_error(
    seen: tuple[AuthActions, list[AuthError]], method: str, path: str, allow: str
) -> None:
    auth, errors = seen
    response = auth.client.open(path, method=method)
    assert (response.status_code, response.json) == (405, {"custom": "method_not_allowed"})
    assert response.headers["Allow"] == allow
    (error,) = errors
    assert isinstance(error, MethodNotAllowed)
    assert error.allow == allow

"""The exception family and how errors render (SPEC section 5)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import time_machine
from flask import Flask, abort, request
from flask.testing import FlaskClient

import flask_cocart_jwt
from flask_cocart_jwt import (
    AuthError,
    CoCartJWT,
    CoCartJWTError,
    ConfigurationError,
    CsrfFailed,
    FreshTokenRequired,
    InvalidCredentials,
    InvalidDPoPProof,
    InvalidRefreshToken,
    InvalidRequest,
    InvalidToken,
    MethodNotAllowed,
    MissingToken,
    NotFound,
    RateLimited,
    RefreshTokenExpired,
    RefreshTokenReused,
    ServiceUnavailable,
    SessionRevoked,
    TokenExpired,
    UseDPoPNonce,
    UserNotFound,
)
from tests.conftest import AuthActions, assert_error

INVALID = 'Bearer error="invalid_token"'
REALM = 'Bearer realm="api"'

#: (class, status, code, WWW-Authenticate or None)
TABLE: list[tuple[type[AuthError], int, str, str | None]] = [
    (InvalidRequest, 400, "invalid_request", None),
    (InvalidCredentials, 401, "invalid_credentials", REALM),
    (MissingToken, 401, "missing_token", REALM),
    (InvalidToken, 401, "invalid_token", INVALID),
    (TokenExpired, 401, "token_expired", INVALID),
    (SessionRevoked, 401, "session_revoked", INVALID),
    (FreshTokenRequired, 401, "fresh_token_required", INVALID),
    (UserNotFound, 401, "user_not_found", INVALID),
    (InvalidRefreshToken, 401, "invalid_refresh_token", INVALID),
    (RefreshTokenExpired, 401, "refresh_token_expired", INVALID),
    (RefreshTokenReused, 401, "refresh_token_reused", INVALID),
    (RateLimited, 429, "rate_limited", None),
    (ServiceUnavailable, 503, "service_unavailable", None),
    (NotFound, 404, "not_found", None),
    (MethodNotAllowed, 405, "method_not_allowed", None),
    (CsrfFailed, 403, "csrf_failed", None),
    (InvalidDPoPProof, 401, "invalid_dpop_proof", 'DPoP error="invalid_dpop_proof"'),
    (UseDPoPNonce, 401, "use_dpop_nonce", 'DPoP error="use_dpop_nonce"'),
]


def test_table_covers_every_auth_error() -> None:
    exported = {
        obj
        for name in flask_cocart_jwt.__all__
        if isinstance(obj := getattr(flask_cocart_jwt, name), type)
        and issubclass(obj, AuthError)
        and obj is not AuthError
    }
    assert exported == {row[0] for row in TABLE}
    assert len({row[2] for row in TABLE}) == len(TABLE)


def test_dpop_errors_name_the_algorithms_and_the_nonce() -> None:
    refused = InvalidDPoPProof(algs="ES256 EdDSA")
    assert refused.headers == {
        "WWW-Authenticate": 'DPoP error="invalid_dpop_proof", algs="ES256 EdDSA"'
    }
    nonce = UseDPoPNonce(algs="ES256", nonce="n0nce")
    assert nonce.headers == {
        "WWW-Authenticate": 'DPoP error="use_dpop_nonce", algs="ES256"',
        "DPoP-Nonce": "n0nce",
    }
    assert isinstance(nonce, InvalidDPoPProof)


def test_hierarchy() -> None:
    assert issubclass(ConfigurationError, CoCartJWTError)
    assert issubclass(AuthError, CoCartJWTError)
    assert not issubclass(ConfigurationError, AuthError)
    for cls, *_ in TABLE:
        assert issubclass(cls, AuthError)


@pytest.mark.parametrize(("cls", "status", "code", "challenge"), TABLE)
def test_status_code_headers_and_body(
    cls: type[AuthError], status: int, code: str, challenge: str | None
) -> None:
    error = cls()
    assert error.status_code == status
    assert error.error == code
    assert isinstance(error.message, str)
    assert error.message.endswith(".")
    assert error.to_dict() == {"error": code, "message": error.message}
    assert str(error) == error.message
    assert code in repr(error)
    headers = error.headers
    assert headers.get("WWW-Authenticate") == challenge
    if status in (429, 503):
        assert int(headers["Retry-After"]) > 0
    else:
        assert "Retry-After" not in headers


@pytest.mark.parametrize(("cls", "status", "code", "challenge"), TABLE)
def test_custom_message_and_retry_after(
    cls: type[AuthError], status: int, code: str, challenge: str | None
) -> None:
    error = cls("Custom sentence.", retry_after=42)
    assert error.message == "Custom sentence."
    assert error.to_dict() == {"error": code, "message": "Custom sentence."}
    assert error.headers["Retry-After"] == "42"
    assert error.headers.get("WWW-Authenticate") == challenge


def test_retry_after_can_be_switched_off() -> None:
    assert "Retry-After" not in RateLimited(retry_after=None).headers
    assert "Retry-After" not in ServiceUnavailable(retry_after=None).headers


@pytest.mark.parametrize(("cls", "status", "code", "challenge"), TABLE)
def test_raised_in_a_view_renders_as_json(
    make_app: Callable[..., Flask],
    cls: type[AuthError],
    status: int,
    code: str,
    challenge: str | None,
) -> None:
    app = make_app()

    @app.get("/raise")
    def raise_it() -> Any:
        raise cls

    response = app.test_client().get("/raise")
    assert_error(response, status, code)
    assert response.json == cls().to_dict()
    assert response.headers.get("WWW-Authenticate") == challenge


def test_werkzeug_4xx_inside_blueprint_routes_is_json(make_app: Callable[..., Flask]) -> None:
    app = make_app(MAX_CONTENT_LENGTH=1024)
    client = app.test_client()
    big = {"username": "alice", "password": "x" * 4096}
    assert_error(client.post("/auth/login", data=big), 400, "invalid_request")
    assert_error(client.post("/auth/login", json=big), 400, "invalid_request")
    assert_error(
        client.post("/auth/refresh-token", json={"refresh_token": "rt_" + "a" * 2000}),
        400,
        "invalid_request",
    )


def test_abort_in_credentials_checker_is_json(make_app: Callable[..., Flask]) -> None:
    ext = CoCartJWT()
    app = make_app(extension=ext)

    @ext.credentials_checker
    def check(username: str, password: str) -> Any:
        abort(400)

    response = app.test_client().post("/auth/login", json={"username": "a", "password": "b"})
    assert_error(response, 400, "invalid_request")


def test_an_apps_own_429_stays_a_429(make_app: Callable[..., Flask]) -> None:
    # e.g. a limit of the app's own, in its before_request, on the token routes
    app = make_app(COCART_JWT_RATELIMIT_ENABLED=False)
    seen: list[str] = []

    @app.before_request
    def own_limit() -> None:
        if request.blueprint == "cocart_jwt":
            seen.append(request.path)
            if len(seen) > 1:
                abort(429)

    client = app.test_client()
    client.post("/auth/login", json={"username": "alice", "password": "wonderland"})
    response = client.post("/auth/login", json={"username": "alice", "password": "wonderland"})
    assert_error(response, 429, "rate_limited")
    assert "Retry-After" in response.headers


def test_unknown_session_is_json_404(auth: AuthActions) -> None:
    token = auth.tokens()["access_token"]
    response = auth.client.delete(
        "/auth/sessions/nope", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 404
    assert response.json == {"error": "not_found", "message": "No such session."}


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("get", "/auth/login", "POST"),
        ("put", "/auth/refresh-token", "POST"),
        ("get", "/auth/validate-token", "POST"),
        ("post", "/auth/sessions", "GET"),
        ("get", "/auth/sessions/abc", "DELETE"),
        ("delete", "/auth/jwks.json", "GET"),
    ],
)
def test_wrong_method_is_json_405(
    client: FlaskClient, method: str, path: str, allowed: str
) -> None:
    response = getattr(client, method)(path)
    assert response.status_code == 405
    assert response.json["error"] == "method_not_allowed"
    assert response.headers["Allow"].startswith(allowed)


@pytest.mark.parametrize(
    ("path", "allow"),
    [
        ("/auth/login", {"POST", "OPTIONS"}),
        ("/auth/refresh-token", {"POST", "OPTIONS"}),
        ("/auth/sessions", {"GET", "HEAD", "OPTIONS"}),
        ("/auth/sessions/abc", {"DELETE", "OPTIONS"}),
        ("/auth/sessions/a/b", {"DELETE", "OPTIONS"}),
        ("/auth/jwks.json", {"GET", "HEAD", "OPTIONS"}),
    ],
)
def test_options_lists_the_route_methods(client: FlaskClient, path: str, allow: set[str]) -> None:
    # A CORS preflight or a client asking what a route takes: 200 with the
    # route's own methods, not those of the JSON-405 catch-all.
    response = client.options(path)
    assert response.status_code == 200
    assert set(response.headers["Allow"].split(", ")) == allow
    assert response.get_data() == b""


def _assert_no_echo(response: Any, *secrets: str) -> None:
    text = response.get_data(as_text=True)
    assert response.is_json
    for secret in secrets:
        for part in secret.split("."):
            if len(part) >= 8:
                assert part not in text
        assert secret not in text
        assert secret not in str(response.headers)


def test_messages_never_echo_the_token(client: FlaskClient, auth: AuthActions) -> None:
    tokens = auth.tokens()
    access, refresh = tokens["access_token"], tokens["refresh_token"]
    head, payload, signature = access.split(".")
    forged = f"{head}.{payload}.{signature[::-1]}"
    garbage = "not-a-token-" + "q" * 40
    for token in (forged, garbage, refresh, access + "x", "a" * 9000):
        for path in ("/me", "/optional"):
            _assert_no_echo(auth.get(path, token), token)
        _assert_no_echo(auth.post("/auth/validate-token", token), token)
    for token in (access, refresh + "x", "rt_" + "z" * 40, "x" * 300):
        _assert_no_echo(auth.refresh(token), token)
    rotated = auth.refresh(refresh)
    assert rotated.status_code == 200
    _assert_no_echo(auth.refresh(refresh), refresh)  # replay: session revoked
    _assert_no_echo(auth.get("/me", access), access)  # session_revoked


def test_expired_token_message_does_not_echo(auth: AuthActions) -> None:
    with time_machine.travel(1_800_000_000, tick=False):
        token = auth.tokens()["access_token"]
    with time_machine.travel(1_800_000_000 + 901, tick=False):
        response = auth.get("/me", token)
    assert_error(response, 401, "token_expired")
    _assert_no_echo(response, token)

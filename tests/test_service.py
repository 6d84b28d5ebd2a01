"""The per-app service: reached through the extension instance, one per app."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask

from flask_cocart_jwt import CoCartJWT, TokenPair
from flask_cocart_jwt.service import Service
from tests.conftest import PASSWORDS, AuthActions, User, assert_error


def test_get_service_of_an_app_the_instance_was_not_initialised_on(
    make_app: Callable[..., Flask],
) -> None:
    app = make_app()
    assert isinstance(app.extensions["cocart_jwt"].get_service(app), Service)
    other = CoCartJWT()
    with pytest.raises(RuntimeError, match="init_app"):
        other.get_service(app)


def test_an_uninitialised_instance_refuses_to_issue_tokens_inside_another_apps_context(
    make_app: Callable[..., Flask],
) -> None:
    app = make_app()
    stranger = CoCartJWT()  # never initialised: it must not borrow the app's store
    with app.app_context(), pytest.raises(RuntimeError, match="init_app"):
        stranger.issue_tokens(User("alice"))


def test_one_instance_keeps_one_service_per_app(make_app: Callable[..., Flask]) -> None:
    shared = CoCartJWT()
    first = make_app(extension=shared, COCART_JWT_ACCESS_TOKEN_EXPIRES=60)
    second = make_app(extension=shared, COCART_JWT_ACCESS_TOKEN_EXPIRES=120)
    assert shared.get_service(first) is not shared.get_service(second)
    with first.app_context():
        assert shared.service.settings.access_token_expires == 60
    with second.app_context():
        assert shared.service.settings.access_token_expires == 120


def test_refresh_outside_a_request(make_app: Callable[..., Flask]) -> None:
    app = make_app()
    ext: CoCartJWT = app.extensions["cocart_jwt"]
    with app.app_context():
        first = ext.issue_tokens(User("alice"))
        second = ext.refresh(first.refresh_token)
    assert isinstance(second, TokenPair)
    assert second.session_id == first.session_id
    assert second.refresh_token != first.refresh_token


def test_refresh_outside_a_request_is_refused_when_sessions_are_bound_to_the_client(
    make_app: Callable[..., Flask],
) -> None:
    app = make_app(COCART_JWT_BIND_IP=True)
    client = app.test_client()
    tokens = AuthActions(client).tokens()
    ext: CoCartJWT = app.extensions["cocart_jwt"]
    with app.app_context(), pytest.raises(Exception, match="refresh token is invalid"):
        ext.refresh(tokens["refresh_token"])


def test_user_loader_runs_outside_the_rotating_transaction(
    make_app: Callable[..., Flask],
) -> None:
    ext = CoCartJWT()
    held: list[int] = []

    @ext.user_loader
    def load(identity: str) -> User | None:
        # A slow loader must hold no connection (and so no row lock) of the store.
        held.append(ext.service.store.engine.pool.checkedout())  # type: ignore[attr-defined]
        return User(identity) if identity in PASSWORDS else None

    app = make_app(extension=ext)
    auth = AuthActions(app.test_client())
    tokens = auth.tokens()
    response = auth.refresh(tokens["refresh_token"])
    assert response.status_code == 200, response.json
    retry = auth.refresh(tokens["refresh_token"])  # inside the reuse interval
    assert retry.json["refresh_token"] == response.json["refresh_token"]
    assert held == [0, 0]


def test_an_unparsable_limit_set_at_runtime_is_skipped_and_logged_once(
    make_app: Callable[..., Flask],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Alembic's fileConfig (the Flask-Migrate example test) disables existing loggers.
    monkeypatch.setattr(logging.getLogger("flask_cocart_jwt.limits"), "disabled", False)
    app = make_app(COCART_JWT_RATELIMIT_ENABLED=True)
    auth = AuthActions(app.test_client())
    app.config["COCART_JWT_LIMIT_LOGIN_PER_IP"] = "ten per fortnight"
    with (
        caplog.at_level(logging.WARNING),
        caplog.at_level(logging.WARNING, logger="flask_cocart_jwt.limits"),
    ):
        for _ in range(3):
            assert auth.login().status_code == 200
        assert_error(auth.login(password="wrong"), 401, "invalid_credentials")
    messages = [r.getMessage() for r in caplog.records]
    assert [m for m in messages if "COCART_JWT_LIMIT_LOGIN_PER_IP" in m] == [
        "COCART_JWT_LIMIT_LOGIN_PER_IP is skipped: Invalid rate-limit string "
        "'ten per fortnight'; use e.g. '10 per minute', '' or None."
    ]
    assert not [m for m in messages if "unreachable" in m]
    # The other limits still count.
    headers = auth.login().headers
    assert headers["X-RateLimit-Limit"] == "5"


def test_callbacks_are_readable_but_not_assignable() -> None:
    ext = CoCartJWT()

    def loader(identity: str) -> Any:
        return identity

    assert ext.user_loader_callback is None
    ext.user_loader(loader)
    assert ext.user_loader_callback is loader
    with pytest.raises(AttributeError):
        ext.user_loader_callback = None  # type: ignore[misc]

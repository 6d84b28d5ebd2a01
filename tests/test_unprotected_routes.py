"""Routes the extension does not protect pay nothing for it being installed.

No app-wide request hook, ``after_request`` or teardown of the extension runs
on them: the one hook that exempts the token routes from a Flask-Limiter
initialised after ``init_app`` runs on the app's first request and removes
itself, rate-limit headers are added by the requests that counted a limit,
and the user's ``db.session`` is closed early only when a 503 is rendered.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
from flask import Flask, jsonify
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_sqlalchemy import SQLAlchemy

import flask_cocart_jwt
from flask_cocart_jwt import CoCartJWT, get_jwt_identity, jwt_required
from tests.conftest import PASSWORDS, SECRET, AuthActions, User

PACKAGE = str(Path(flask_cocart_jwt.__file__).resolve().parent)


@contextmanager
def extension_calls() -> Iterator[list[str]]:
    """The functions of the package called in the block (``sys.setprofile``)."""
    calls: list[str] = []

    def profile(frame: FrameType, event: str, _arg: Any) -> None:
        if event == "call" and frame.f_code.co_filename.startswith(PACKAGE):
            calls.append(f"{Path(frame.f_code.co_filename).name}:{frame.f_code.co_name}")

    sys.setprofile(profile)
    try:
        yield calls
    finally:
        sys.setprofile(None)


def shop_like_app(tmp_path: Path, *, with_db: bool) -> Flask:
    """The documented setup, rate limits on, plus the app's own Flask-Limiter
    initialised after the extension (the case that needs a first-request hook)."""
    app = Flask(__name__, instance_path=str(tmp_path))
    app.config.update(
        TESTING=True,
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'app.sqlite3'}",
        COCART_JWT_SECRET_KEY=SECRET,
    )
    db = SQLAlchemy(app)
    ext = CoCartJWT(db=db) if with_db else CoCartJWT()

    @ext.credentials_checker
    def check(username: str, password: str) -> User | None:
        return User(username) if PASSWORDS.get(username) == password else None

    ext.init_app(app)
    Limiter(get_remote_address, app=app, default_limits=["1 per minute"], storage_uri="memory://")
    with app.app_context():
        db.create_all()

    @app.get("/open")
    def open_route() -> Any:
        return jsonify(ok=True)

    @app.get("/me")
    @jwt_required
    def me() -> Any:
        return jsonify(who=get_jwt_identity())

    return app


@pytest.mark.parametrize("with_db", [True, False], ids=["db", "embedded"])
def test_unprotected_routes_run_no_extension_code(tmp_path: Path, with_db: bool) -> None:
    app = shop_like_app(tmp_path, with_db=with_db)
    client = app.test_client()
    assert client.get("/open").status_code == 200  # the first request (and its one-time hook)

    with extension_calls() as calls:
        response = client.get("/open", environ_base={"REMOTE_ADDR": "10.0.0.2"})
    with extension_calls() as unrouted_calls:
        missing = client.get("/no-such-page", environ_base={"REMOTE_ADDR": "10.0.0.3"})

    assert response.status_code == 200
    assert calls == []
    # A request that matches no route outside the prefix keeps the app's own
    # 404, and runs no code of the extension either (the JSON 404s under the
    # prefix come from URL rules of their own).
    assert missing.status_code == 404
    assert not missing.is_json
    assert unrouted_calls == []


def test_the_extension_still_works_once_its_first_request_hook_is_gone(tmp_path: Path) -> None:
    app = shop_like_app(tmp_path, with_db=True)
    client = app.test_client()
    assert client.get("/open").status_code == 200
    auth = AuthActions(client)
    # The app's limiter ("1 per minute") never counts the token routes.
    tokens = auth.tokens()
    refreshed = auth.refresh(tokens["refresh_token"])
    assert refreshed.status_code == 200, refreshed.json
    assert "X-RateLimit-Limit" in refreshed.headers  # the extension's own limit
    assert refreshed.headers["X-RateLimit-Limit"] == "2"  # refresh per token, not the app's 1
    response = client.get(
        "/me",
        headers={"Authorization": f"Bearer {refreshed.json['access_token']}"},
        environ_base={"REMOTE_ADDR": "10.0.0.4"},  # the app's limiter counts /me
    )
    assert response.status_code == 200
    assert response.json == {"who": "alice"}
    assert "X-RateLimit-Limit" not in response.headers  # no limit on protected views by default

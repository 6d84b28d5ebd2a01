"""Database outages inside the user's callbacks: 503, never 500.

The shop-style callbacks (``credentials_checker``, ``user_loader``) query the
database themselves, so an outage raises SQLAlchemy's ``OperationalError``
inside them. The extension turns it into ``service_unavailable`` with
``Retry-After`` on its routes and on ``@jwt_required`` views, and nothing is
consumed: the refresh token still works once the database is back.

The "down" databases (conftest's ``down_engine``) are real: an SQLite file in
a directory that does not exist, and a PostgreSQL URL on a closed local port
(no server needed).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import sqlalchemy as sa
from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from flask_cocart_jwt import CoCartJWT
from tests.conftest import (
    PASSWORDS,
    SECRET,
    AuthActions,
    User,
    _drop_token_tables,
    assert_error,
    require_server,
)
from tests.integration.proxy import TcpProxy
from tests.support import AppFactory, app_factory, live_tokens


class Users:
    """Callbacks that read the user from a database that can be switched off."""

    def __init__(self, down_engine: sa.Engine) -> None:
        self.down_engine = down_engine
        self.down = False

    def _query(self) -> None:
        if self.down:
            with self.down_engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))

    def check(self, username: str, password: str) -> User | None:
        self._query()
        return User(username) if PASSWORDS.get(username) == password else None

    def load(self, identity: str) -> User | None:
        self._query()
        return User(identity) if identity in PASSWORDS else None


@pytest.fixture
def users(down_engine: sa.Engine) -> Users:
    return Users(down_engine)


@pytest.fixture
def shop(make_app: AppFactory, tmp_path: Any, users: Users) -> Iterator[Flask]:
    ext = CoCartJWT()
    with app_factory(make_app, f"sqlite:///{tmp_path / 'tokens.sqlite3'}") as factory:
        app = factory(extension=ext)
        ext.register_credentials_checker(users.check)
        ext.register_user_loader(users.load)
        yield app


def assert_unavailable(response: Any) -> None:
    assert_error(response, 503, "service_unavailable")
    assert int(response.headers["Retry-After"]) > 0
    assert "Traceback" not in response.get_data(as_text=True)


def test_login_is_503_when_the_credentials_checker_loses_the_database(
    shop: Flask, users: Users
) -> None:
    auth = AuthActions(shop.test_client())
    users.down = True
    assert_unavailable(auth.login())
    users.down = False
    assert auth.login().status_code == 200


def test_protected_view_is_503_when_the_user_loader_loses_the_database(
    shop: Flask, users: Users
) -> None:
    auth = AuthActions(shop.test_client())
    tokens = auth.tokens()
    users.down = True
    assert_unavailable(auth.get("/whoami", tokens["access_token"]))
    assert_unavailable(auth.get("/me", tokens["access_token"]))
    users.down = False
    response = auth.get("/whoami", tokens["access_token"])
    assert response.status_code == 200
    assert response.json == {"id": "alice"}


def test_refresh_is_503_and_consumes_nothing_when_the_user_loader_loses_the_database(
    shop: Flask, users: Users
) -> None:
    auth = AuthActions(shop.test_client())
    tokens = auth.tokens()
    users.down = True
    assert_unavailable(auth.refresh(tokens["refresh_token"]))
    # Nothing was consumed: the session still has exactly its first token.
    assert len(live_tokens(shop, tokens["session_id"])) == 1
    users.down = False
    again = auth.refresh(tokens["refresh_token"])
    assert again.status_code == 200, again.json
    assert again.json["session_id"] == tokens["session_id"]
    assert len(live_tokens(shop, tokens["session_id"])) == 1


@pytest.fixture
def postgresql_via_proxy() -> Iterator[tuple[str, TcpProxy]]:
    """The PostgreSQL test database behind a proxy that can be cut."""
    url = require_server("postgresql")
    _drop_token_tables(url)
    parts = urlsplit(url)
    with TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432) as proxy:
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = (userinfo + "@" if userinfo else "") + f"127.0.0.1:{proxy.port}"
        yield urlunsplit(parts._replace(netloc=netloc)), proxy
    _drop_token_tables(url)


@pytest.mark.needs_server
def test_connection_lost_mid_request_is_503_not_500(
    postgresql_via_proxy: tuple[str, TcpProxy],
) -> None:
    """The user's ``db.session`` holds a connection that dies mid-request.

    Flask-SQLAlchemy's teardown would roll it back over the dead socket and
    turn the rendered 503 into a 500; the extension closes it first.
    """
    url, proxy = postgresql_via_proxy
    db = SQLAlchemy()
    ext = CoCartJWT(db=db)
    app = Flask(__name__)
    app.config.update(
        TESTING=True,
        SQLALCHEMY_DATABASE_URI=url,
        COCART_JWT_SECRET_KEY=SECRET,
        COCART_JWT_RATELIMIT_ENABLED=False,
    )
    cut = {"now": False}

    @ext.credentials_checker
    def check(username: str, password: str) -> User | None:
        return User(username) if PASSWORDS.get(username) == password else None

    @ext.user_loader
    def load(identity: str) -> User:
        db.session.execute(sa.text("SELECT 1"))  # the session now holds a connection
        if cut["now"]:
            proxy.cut()  # ... which dies before the extension's own queries
        return User(identity)

    db.init_app(app)
    ext.init_app(app)
    with app.app_context():
        db.create_all()
    try:
        auth = AuthActions(app.test_client())
        tokens = auth.tokens()
        cut["now"] = True
        assert_unavailable(auth.refresh(tokens["refresh_token"]))
        cut["now"] = False
        proxy.restore()
        again = auth.refresh(tokens["refresh_token"])
        assert again.status_code == 200, again.json
    finally:
        with app.app_context():
            db.engine.dispose()
        state = app.extensions["cocart_jwt"].get_service(app)
        if state.revocations is not None:
            state.revocations.close()

"""Database outages inside the user's callbacks: 503, never 500.

The shop-style callbacks (``credentials_checker``, ``user_loader``) query the
database themselves, so an outage raises SQLAlchemy's ``OperationalError``
inside them. The extension turns it into ``service_unavailable`` with
``Retry-After`` on its routes and on ``@jwt_required`` views, and nothing is
consumed: the refresh token still works once the database is back.

The "down" databases are real: an SQLite file in a directory that does not
exist, and a PostgreSQL URL on a closed local port (no server needed).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from flask_cocart_jwt import CoCartJWT
from flask_cocart_jwt.exceptions import ServiceUnavailable
from flask_cocart_jwt.store import database_errors_as_503
from tests.conftest import PASSWORDS, AuthActions, User, assert_error
from tests.test_refresh import AppFactory, app_factory, live_tokens


def closed_port() -> int:
    """A local TCP port that nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture(params=["sqlite-missing-dir", "postgresql-closed-port"])
def down_engine(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[sa.Engine]:
    """An engine whose every connection attempt fails with ``OperationalError``."""
    if request.param == "sqlite-missing-dir":
        url = f"sqlite:///{tmp_path / 'missing' / 'users.sqlite3'}"
        engine = sa.create_engine(url)
    else:
        url = f"postgresql+psycopg://nobody@127.0.0.1:{closed_port()}/users"
        engine = sa.create_engine(url, connect_args={"connect_timeout": 2})
    try:
        yield engine
    finally:
        engine.dispose()


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


def test_context_manager_turns_connection_errors_into_503(down_engine: sa.Engine) -> None:
    with (
        pytest.raises(ServiceUnavailable) as info,
        database_errors_as_503(),
        down_engine.connect() as conn,
    ):
        conn.execute(sa.text("SELECT 1"))
    assert isinstance(info.value.__cause__, sa.exc.OperationalError)
    assert info.value.status_code == 503
    assert info.value.headers["Retry-After"] == str(info.value.retry_after)


def test_context_manager_lets_other_errors_through() -> None:
    with pytest.raises(ValueError, match="not ours"), database_errors_as_503():
        raise ValueError("not ours")
    integrity = sa.exc.IntegrityError("INSERT", {}, Exception("duplicate"))
    with pytest.raises(sa.exc.IntegrityError), database_errors_as_503():
        raise integrity
    with database_errors_as_503():
        pass  # nothing raised, nothing changed


def test_login_when_credentials_checker_loses_the_database(shop: Flask, users: Users) -> None:
    auth = AuthActions(shop.test_client())
    users.down = True
    assert_unavailable(auth.login())
    users.down = False
    assert auth.login().status_code == 200


def test_protected_view_when_user_loader_loses_the_database(shop: Flask, users: Users) -> None:
    auth = AuthActions(shop.test_client())
    tokens = auth.tokens()
    users.down = True
    assert_unavailable(auth.get("/whoami", tokens["access_token"]))
    assert_unavailable(auth.get("/me", tokens["access_token"]))
    users.down = False
    response = auth.get("/whoami", tokens["access_token"])
    assert response.status_code == 200
    assert response.json == {"id": "alice"}


def test_refresh_when_user_loader_loses_the_database(shop: Flask, users: Users) -> None:
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

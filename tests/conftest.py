"""Shared fixtures: an app factory, apps, a client, database backends and an auth helper.

Backends that need a server (PostgreSQL, MariaDB, Redis) are reached at the
URLs below (override with the environment variables). When one is absent its
tests are skipped with the reason, except in CI (``CI=true``), where a missing
server fails the run.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
from flask import Flask, jsonify
from flask.testing import FlaskClient

from flask_cocart_jwt import CoCartJWT, current_user, get_jwt, get_jwt_identity, jwt_required

SECRET = "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz"
PASSWORDS = {"alice": "wonderland", "bob": "builder"}
#: Configuration that switches the rate limits off.
NO_LIMITS = {"COCART_JWT_RATELIMIT_ENABLED": False}

#: The contract's error codes by status (SPEC section 5), for property tests.
DOCUMENTED_ERRORS: dict[int, set[str]] = {
    400: {"invalid_request"},
    401: {
        "invalid_credentials",
        "missing_token",
        "invalid_token",
        "token_expired",
        "session_revoked",
        "user_not_found",
        "invalid_refresh_token",
        "refresh_token_expired",
        "refresh_token_reused",
        "invalid_dpop_proof",
        "use_dpop_nonce",
    },
    403: {"csrf_failed"},
    404: {"not_found"},
    429: {"rate_limited"},
}
#: The fields of the token response (SPEC section 4).
TOKEN_FIELDS = frozenset(
    {
        "access_token",
        "token_type",
        "expires_in",
        "refresh_token",
        "refresh_token_expires_in",
        "session_id",
    }
)


@pytest.hookimpl(trylast=True)  # after any shuffling plugin
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the browser tests (``-m browser``, tests/browser) last: the slowest,
    and the ones that need Chromium."""
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)


SERVER_URLS = {
    "postgresql": os.environ.get(
        "COCART_JWT_TEST_POSTGRESQL_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    ),
    "mariadb": os.environ.get(
        "COCART_JWT_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test"
    ),
    "redis": os.environ.get("COCART_JWT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"),
}
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(autouse=True)
def _enabled_package_loggers(monkeypatch: pytest.MonkeyPatch) -> None:
    """The package's loggers enabled for every test.

    Alembic's ``fileConfig`` (run by the Flask-Migrate tests) disables every
    logger that exists at that moment, so a later test that reads the
    package's log through ``caplog`` would see nothing, depending on order.
    """
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if name.startswith("flask_cocart_jwt") and isinstance(logger, logging.Logger):
            monkeypatch.setattr(logger, "disabled", False)


_reachable: dict[str, bool] = {}


def require_server(name: str) -> str:
    """The URL of server ``name``; skip (fail in CI) when it is not reachable."""
    url = SERVER_URLS[name]
    if name not in _reachable:
        parts = urlsplit(url.replace("+psycopg", "").replace("+pymysql", ""))
        try:
            with socket.create_connection((parts.hostname, parts.port or 0), timeout=2):
                _reachable[name] = True
        except OSError:
            _reachable[name] = False
    if not _reachable[name]:
        reason = f"{name} is not reachable at {url} (set COCART_JWT_TEST_{name.upper()}_URL)"
        if IN_CI:
            pytest.fail(f"CI needs every test server: {reason}")
        pytest.skip(reason)
    return url


class User:
    """A tiny user object for the test apps."""

    def __init__(self, id: str) -> None:
        self.id = id


#: A database of this test run's own on each server, so that two runs at once
#: (two developers, or a developer and CI) never drop each other's tables.
RUN_DATABASE = f"cocart_jwt_test_{os.getpid()}"


@pytest.fixture(scope="session")
def server_databases() -> Iterator[dict[str, str]]:
    """Backend name -> URL of this run's database, created on first use."""
    from tests.integration.servers import dedicated_database, drop_database

    created: dict[str, str] = {}

    class Lazy(dict[str, str]):
        def __missing__(self, backend: str) -> str:
            base = require_server(backend)
            created[backend] = base
            self[backend] = dedicated_database(base, RUN_DATABASE)
            return self[backend]

    yield Lazy()
    for base in created.values():
        drop_database(base, RUN_DATABASE)


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def database_uri(
    request: pytest.FixtureRequest, tmp_path: Any, server_databases: dict[str, str]
) -> Iterator[str]:
    """An empty token database on each backend, dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'tokens.sqlite3'}"
        return
    url = server_databases[request.param]
    _drop_token_tables(url)
    yield url
    _drop_token_tables(url)


def _drop_token_tables(url: str) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE IF EXISTS cocart_jwt_refresh_tokens"))
            conn.execute(sa.text("DROP TABLE IF EXISTS cocart_jwt_sessions"))
    finally:
        engine.dispose()


def closed_port() -> int:
    """A local TCP port that nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture(params=["sqlite-missing-dir", "postgresql-closed-port"])
def down_engine(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[sa.Engine]:
    """An engine whose every connection attempt fails with ``OperationalError``:
    an SQLite file in a missing directory, or PostgreSQL on a closed port."""
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


@pytest.fixture
def make_app(tmp_path: Any) -> Callable[..., Flask]:
    """Build a test app: ``make_app(COCART_JWT_ALGORITHM="HS512", ...)``.

    Users are ``alice`` and ``bob`` (see ``PASSWORDS``). Routes: ``/me``
    (protected), ``/optional``, ``/fresh`` and ``/whoami`` (needs a user loader).
    Pass ``extension=CoCartJWT(...)`` to use a prepared extension.
    """
    count = 0

    def factory(*, extension: CoCartJWT | None = None, **config: Any) -> Flask:
        nonlocal count
        count += 1
        app = Flask(f"test_app_{count}", instance_path=str(tmp_path / f"instance{count}"))
        app.config.update(TESTING=True, COCART_JWT_SECRET_KEY=SECRET)
        app.config.update(config)
        ext = extension or CoCartJWT()

        @ext.credentials_checker
        def check(username: str, password: str) -> User | None:
            return User(username) if PASSWORDS.get(username) == password else None

        ext.init_app(app)

        @app.get("/me")
        @jwt_required
        def me() -> Any:
            return jsonify(identity=get_jwt_identity(), claims=get_jwt())

        @app.get("/optional")
        @jwt_required(optional=True)
        def optional() -> Any:
            return jsonify(identity=get_jwt_identity())

        @app.post("/fresh")
        @jwt_required(fresh=True)
        def fresh() -> Any:
            return jsonify(identity=get_jwt_identity())

        @app.get("/whoami")
        @jwt_required
        def whoami() -> Any:
            return jsonify(id=current_user.id)

        return app

    return factory


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    """A test app on the embedded SQLite default, rate limits off.

    A test that needs the rate limits, or other configuration, builds its app
    with ``make_app``.
    """
    return make_app(**NO_LIMITS)


@pytest.fixture
def new_app(make_app: Callable[..., Flask], database_uri: str) -> Iterator[Callable[..., Flask]]:
    """``new_app(**config)``: apps on each database backend (``database_uri``),
    rate limits off unless ``config`` says otherwise, closed afterwards."""
    from tests.support import app_factory  # tests.support imports this module

    with app_factory(make_app, database_uri) as factory:
        yield factory


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A test client of ``app``."""
    return app.test_client()


class AuthActions:
    """Log in, refresh and call protected routes, in the spirit of Flask's tutorial."""

    def __init__(self, client: FlaskClient, prefix: str = "/auth") -> None:
        self.client = client
        self.prefix = prefix

    def login(self, username: str = "alice", password: str | None = None) -> Any:
        password = PASSWORDS.get(username, "x") if password is None else password
        return self.client.post(
            f"{self.prefix}/login", json={"username": username, "password": password}
        )

    def tokens(self, username: str = "alice") -> dict[str, Any]:
        response = self.login(username)
        assert response.status_code == 200, response.json
        body: dict[str, Any] = response.json
        return body

    def refresh(self, refresh_token: Any) -> Any:
        return self.client.post(
            f"{self.prefix}/refresh-token", json={"refresh_token": refresh_token}
        )

    def get(self, path: str, access_token: str) -> Any:
        return self.client.get(path, headers={"Authorization": f"Bearer {access_token}"})

    def post(self, path: str, access_token: str, **kwargs: Any) -> Any:
        return self.client.post(path, headers={"Authorization": f"Bearer {access_token}"}, **kwargs)


@pytest.fixture
def auth(client: FlaskClient) -> AuthActions:
    """An :class:`AuthActions` on ``client``."""
    return AuthActions(client)


def assert_error(response: Any, status: int, code: str) -> None:
    """Assert that ``response`` is the contract's JSON error."""
    assert response.status_code == status, (response.status_code, response.get_data()[:300])
    assert response.is_json, response.get_data()[:300]
    assert response.json["error"] == code, response.json
    assert isinstance(response.json["message"], str)
    assert response.json["message"]
    if status == 401:
        # DPoP's errors carry the DPoP challenge (RFC 9449 section 7.1).
        scheme = "DPoP " if code in ("invalid_dpop_proof", "use_dpop_nonce") else "Bearer "
        assert response.headers["WWW-Authenticate"].startswith(scheme)

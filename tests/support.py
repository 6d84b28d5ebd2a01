"""Helpers shared by the test modules (fixtures shared by them are in ``conftest.py``).

- apps: :func:`app_factory` and the app's extension state (:func:`app_state`,
  :func:`close_app`);
- the token store: its rows (:func:`table_rows`, :func:`live_tokens`) and
  injected database failures (:func:`failing`);
- rate limits: :func:`assert_limited`, :func:`header_triple` and
  :func:`redis_cleanup`;
- cookie mode: :func:`set_cookies` (``Set-Cookie`` headers parsed) and
  :class:`BrowserActions` (a browser's requests on the test client).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event
from sqlalchemy import exc as sa_exc

from flask_cocart_jwt.service import Service
from tests.conftest import PASSWORDS, assert_error

AppFactory = Callable[..., Flask]


# -- apps and the token store ---------------------------------------------------


def app_state(app: Flask) -> Service:
    """The extension's state for ``app``."""
    state: Service = app.extensions["cocart_jwt"].get_service(app)
    return state


def close_app(app: Flask) -> None:
    """Stop the revocation poller and close the pooled connections of ``app``."""
    state = app_state(app)
    if state.revocations is not None:
        state.revocations.close()
    state.store.close()


@contextmanager
def app_factory(make_app: AppFactory, database_uri: str) -> Iterator[AppFactory]:
    """``make_app`` on ``database_uri``, rate limits off, apps closed afterwards."""
    apps: list[Flask] = []

    def factory(**config: Any) -> Flask:
        config.setdefault("COCART_JWT_DATABASE_URI", database_uri)
        config.setdefault("COCART_JWT_RATELIMIT_ENABLED", False)
        app = make_app(**config)
        apps.append(app)
        return app

    try:
        yield factory
    finally:
        for app in apps:
            close_app(app)


def table_rows(app: Flask, name: str) -> list[dict[str, Any]]:
    """Every row of one token table, as dicts."""
    state = app_state(app)
    table = getattr(state.store.tables, name)
    with state.store.engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(sa.select(table))]


def live_tokens(app: Flask, session_id: str) -> list[dict[str, Any]]:
    """The unconsumed refresh-token rows of a session."""
    return [
        row
        for row in table_rows(app, "refresh_tokens")
        if row["session_id"] == session_id and row["used_at"] is None
    ]


@contextmanager
def failing(app: Flask, predicate: Callable[[str, Any], bool]) -> Iterator[list[str]]:
    """Make statements matching ``predicate(sql, params)`` raise ``OperationalError``.

    Yields the statements run, so that a test can tell how far it got.
    """
    engine = app_state(app).store.engine
    seen: list[str] = []

    def before(conn: Any, cursor: Any, statement: str, params: Any, *args: Any) -> None:
        seen.append(statement)
        if predicate(statement, params):
            raise sa_exc.OperationalError(statement, params, Exception("injected failure"))

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", before)


# -- rate limits -------------------------------------------------------------


def redis_cleanup(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"LIMITS:LIMITER/cocart_jwt/{prefix}/*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def assert_limited(response: Any, window: int = 60) -> None:
    assert_error(response, 429, "rate_limited")
    retry = int(response.headers["Retry-After"])
    assert 1 <= retry <= window
    assert response.headers["X-RateLimit-Remaining"] == "0"


def header_triple(response: Any) -> tuple[int, int, int]:
    h = response.headers
    return (
        int(h["X-RateLimit-Limit"]),
        int(h["X-RateLimit-Remaining"]),
        int(h["X-RateLimit-Reset"]),
    )


def current_extension() -> tuple[Any, Service]:
    """The extension of the current app and the app's service."""
    from flask import current_app

    ext = current_app.extensions["cocart_jwt"]
    return ext, ext.service


# -- cookie mode ---------------------------------------------------------------


@dataclass(frozen=True)
class SetCookie:
    """One parsed ``Set-Cookie`` header."""

    name: str
    value: str
    #: Attribute names in lower case; flags (``HttpOnly``, ``Secure``) map to ``True``.
    attributes: dict[str, str | bool]

    def __getitem__(self, name: str) -> str | bool:
        return self.attributes[name.lower()]

    def has(self, name: str) -> bool:
        """Whether the attribute is present."""
        return name.lower() in self.attributes


def set_cookies(response: Any) -> dict[str, SetCookie]:
    """The ``Set-Cookie`` headers of a test client ``response``, parsed."""
    return parse_set_cookies(response.headers.getlist("Set-Cookie"))


def parse_set_cookies(headers: list[str]) -> dict[str, SetCookie]:
    """``Set-Cookie`` header values by cookie name, parsed (RFC 6265 4.1).

    A cookie set twice, or an attribute given twice, fails the test.
    """
    parsed: dict[str, SetCookie] = {}
    for header in headers:
        pair, *attributes = header.split(";")
        name, sep, value = pair.strip().partition("=")
        assert sep == "=", header
        assert name, header
        attrs: dict[str, str | bool] = {}
        for attribute in attributes:
            key, eq, attr_value = attribute.strip().partition("=")
            assert key.lower() not in attrs, f"{key} given twice in {header!r}"
            attrs[key.lower()] = attr_value if eq else True
        assert name not in parsed, f"{name} set twice"
        parsed[name] = SetCookie(name, value, attrs)
    return parsed


#: The default cookie names of cookie mode (Secure cookies).
REFRESH_COOKIE = "__Secure-cocart_rt"
CSRF_COOKIE = "cocart_csrf"
ACCESS_COOKIE = "__Secure-cocart_at"
#: The test client's own origin.
ORIGIN = "http://localhost"


class BrowserActions:
    """A browser on the test client: ``Origin`` on every request, the CSRF header echoed."""

    def __init__(self, client: FlaskClient, prefix: str = "/auth", origin: str = ORIGIN) -> None:
        self.client = client
        self.prefix = prefix
        self.origin = origin

    def login(self, username: str = "alice", **kwargs: Any) -> Any:
        return self.client.post(
            f"{self.prefix}/login",
            json={"username": username, "password": PASSWORDS[username]},
            headers={"Origin": self.origin},
            **kwargs,
        )

    def cookie(self, name: str, path: str = "/") -> str | None:
        found = self.client.get_cookie(name, path=path)
        return found.value if found is not None else None

    def refresh_cookie(self) -> str | None:
        return self.cookie(REFRESH_COOKIE, self.prefix or "/")

    def csrf(self) -> str | None:
        return self.cookie(CSRF_COOKIE)

    def headers(self, **extra: str) -> dict[str, str]:
        """``Origin`` and the CSRF header (echoing the CSRF cookie), plus ``extra``."""
        headers = {"Origin": self.origin, **extra}
        csrf = self.csrf()
        if csrf is not None and "X-CSRF-Token" not in extra:
            headers["X-CSRF-Token"] = csrf
        return headers

    def refresh(self, **headers: str) -> Any:
        return self.client.post(f"{self.prefix}/refresh-token", headers=self.headers(**headers))

    def revoke(self, **headers: str) -> Any:
        return self.client.post(f"{self.prefix}/revoke", headers=self.headers(**headers))

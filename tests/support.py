"""Helpers shared by the test modules (fixtures shared by them are in ``conftest.py``).

- apps: :func:`app_factory` and the app's extension state (:func:`app_state`,
  :func:`close_app`);
- the token store: its rows (:func:`table_rows`, :func:`live_tokens`) and
  injected database failures (:func:`failing`);
- rate limits: :func:`assert_limited`, :func:`header_triple` and
  :func:`redis_cleanup`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from flask import Flask
from sqlalchemy import event
from sqlalchemy import exc as sa_exc

from flask_cocart_jwt.service import Service
from tests.conftest import assert_error

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

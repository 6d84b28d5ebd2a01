"""Database connections: the embedded engine, and "database unavailable" as a 503.

With :mod:`flask_cocart_jwt.store`, the only place that knows SQLAlchemy's
exceptions. They are never caught app-wide: only around the extension's own
queries and the user's callbacks that it calls.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, create_engine, event, func, select
from sqlalchemy import exc as sa_exc
from sqlalchemy.pool import StaticPool

from .exceptions import ServiceUnavailable

_UNAVAILABLE = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError)
_NOTIFY = select(func.pg_notify(bindparam("b_channel"), bindparam("b_payload")))


@contextmanager
def database_errors_as_503() -> Iterator[None]:
    """Turn "database unavailable" errors raised in the block into a 503.

    The extension's own queries go through it, and so do the user's callbacks
    (``credentials_checker``, ``user_loader``) that query the database
    themselves: a lost connection, a refused connection or a pool timeout
    answers ``service_unavailable`` with ``Retry-After`` rather than a 500.
    Other errors, including the rest of SQLAlchemy's, pass through.

    .. versionadded:: 0.1
    """
    try:
        yield
    except _UNAVAILABLE as exc:
        raise ServiceUnavailable from exc


def close_session_quietly(scoped: Any) -> None:
    """Close the user's ``db.session``; invalidate it if its connection is gone.

    Flask-SQLAlchemy closes the session at teardown with a ``ROLLBACK``. When
    the database connection dropped during the request, that rollback raises
    after the view has answered and turns a 503 into a 500. Closing it first
    (the extension's teardown is registered after ``db.init_app``'s, so it
    runs before it) does the same, except that a dead connection is
    discarded instead of raising.

    :param scoped: the ``scoped_session`` (``db.session``); nothing is done
        when the current scope has no session.

    .. versionadded:: 0.1
    """
    if not scoped.registry.has():
        return
    session = scoped.registry()
    try:
        session.close()
    except _UNAVAILABLE:
        session.invalidate()


def notify(conn: Connection, channel: str, payloads: Iterable[str], enabled: bool = True) -> None:
    """Send PostgreSQL ``NOTIFY`` messages in ``conn``'s transaction.

    PostgreSQL delivers them to the listeners when, and only if, the
    transaction commits. Nothing is sent on other databases, or when not
    ``enabled``.

    .. versionadded:: 0.2
    """
    if enabled and conn.dialect.name == "postgresql":
        for payload in payloads:
            conn.execute(_NOTIFY, {"b_channel": channel, "b_payload": payload})


def dedicated_connection(engine: Engine) -> Any:
    """The driver's connection of a new connection of ``engine``, out of its pool.

    For a connection held for a long time (``LISTEN``): it does not use up
    the pool, and closing it closes it.

    .. versionadded:: 0.2
    """
    raw = engine.raw_connection()
    driver = raw.driver_connection
    raw.detach()
    return driver


def embedded_engine(uri: str) -> Engine:
    """An engine for the extension's own database (default: SQLite file).

    SQLite gets a busy timeout and WAL journaling so that concurrent requests
    wait for each other instead of failing; in-memory SQLite shares one
    connection.
    """
    kwargs: dict[str, Any] = {}
    if uri.startswith("sqlite"):
        kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
        if uri in ("sqlite://", "sqlite:///:memory:"):
            kwargs["poolclass"] = StaticPool
        else:
            directory = os.path.dirname(uri.split(":///", 1)[-1])
            if directory:
                os.makedirs(directory, exist_ok=True)
    else:
        kwargs["pool_pre_ping"] = True
    engine = create_engine(uri, **kwargs)
    if uri.startswith("sqlite"):
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()

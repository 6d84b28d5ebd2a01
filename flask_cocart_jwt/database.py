"""Database connections: the embedded engine, and "database unavailable" as a 503.

With :mod:`flask_cocart_jwt.store`, the only place that knows SQLAlchemy's
exceptions. They are never caught app-wide: only around the extension's own
queries and the user's callbacks that it calls.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, MetaData, create_engine, event, inspect, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.pool import StaticPool

from .exceptions import ServiceUnavailable

_UNAVAILABLE = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError)


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


#: The PostgreSQL advisory lock under which the extension creates its tables
#: (any fixed 64-bit number: the bytes of "cocartjw").
TABLES_LOCK = 0x636F636172746A77


def create_tables(engine: Engine, metadata: MetaData) -> None:
    """Create the tables of ``metadata`` that are missing, safe against other
    processes doing the same at the same time.

    Several workers of a fresh deployment create the extension's own tables
    on their first request, together. On PostgreSQL the creation runs in one
    transaction under an advisory lock (:data:`TABLES_LOCK`): the others wait,
    then find the tables there. Elsewhere (SQLite, MariaDB and MySQL), and on
    PostgreSQL should anything else create the tables meanwhile, a creation
    that fails because another process created a table between the check and
    the ``CREATE`` ("already exists", a unique violation in the catalog)
    looks again: the tables that are there now are kept, the missing ones
    created. An error that is not such a race (the database is down, no
    privilege to create tables) still raises.

    :param engine: the extension's own engine.
    :param metadata: the metadata of the token tables.

    .. versionadded:: 0.2
    """
    attempts = len(metadata.tables) + 1
    for attempt in range(1, attempts + 1):
        try:
            with engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": TABLES_LOCK})
                metadata.create_all(conn)
            return
        except sa_exc.DBAPIError:
            # Look again on a fresh connection: this raises at once if the
            # database is down, and tells whether another process won a race.
            if not _missing_tables(engine, metadata):
                return
            if attempt == attempts:
                raise


def _missing_tables(engine: Engine, metadata: MetaData) -> list[str]:
    """The names of the tables of ``metadata`` that the database does not have."""
    with engine.connect() as conn:
        present = set(inspect(conn).get_table_names())
    return [name for name in metadata.tables if name not in present]


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()

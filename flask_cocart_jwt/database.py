"""Database connections: the embedded engine, and "database unavailable" as a 503.

With :mod:`flask_cocart_jwt.store`, the only place that knows SQLAlchemy's
exceptions. They are never caught app-wide: only around the extension's own
queries and the user's callbacks that it calls.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import (
    URL,
    Connection,
    Engine,
    MetaData,
    bindparam,
    create_engine,
    event,
    func,
    inspect,
    make_url,
    select,
    text,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.pool import StaticPool

from .deadlines import Deadlines
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
    (the extension's error handler does when it renders a 503, before the
    teardown) does the same, except that a dead connection is discarded
    instead of raising.

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


def embedded_engine(uri: str, timeout: float = 5.0) -> Engine:
    """An engine for the extension's own database (default: SQLite file).

    On PostgreSQL, MariaDB and MySQL, nothing waits for the database longer
    than ``timeout`` (``COCART_JWT_DATABASE_TIMEOUT``): connecting, a free
    connection in the pool, each statement on the server, and each use of a
    connection as a whole (see :mod:`flask_cocart_jwt.deadlines`); a
    connection is pinged before use (unless it was used a moment ago and
    its socket shows nothing), so that a restarted server costs no error.
    Timeouts given in the URL's query string are kept.

    SQLite gets a busy timeout and WAL journaling so that concurrent requests
    wait for each other instead of failing; in-memory SQLite shares one
    connection.
    """
    url = make_url(uri)
    kwargs: dict[str, Any] = {}
    if url.get_backend_name() == "sqlite":
        kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
        if uri in ("sqlite://", "sqlite:///:memory:"):
            kwargs["poolclass"] = StaticPool
        else:
            directory = os.path.dirname(uri.split(":///", 1)[-1])
            if directory:
                os.makedirs(directory, exist_ok=True)
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    connect_args, cut_sockets = timeout_connect_args(url, timeout)
    engine = create_engine(url, connect_args=connect_args, pool_timeout=timeout)
    Deadlines(timeout, cut_sockets=cut_sockets).install(engine)
    return engine


def timeout_connect_args(url: URL, timeout: float) -> tuple[dict[str, Any], bool]:
    """The driver's timeout arguments for ``url``, and whether it lacks a
    client-side socket timeout (libpq: the watchdog must cut its sockets).

    Arguments already in the URL's query string win.
    """
    whole = max(1, math.ceil(timeout))
    driver = url.get_driver_name()
    args: dict[str, Any] = {}
    if url.get_backend_name() == "postgresql" and driver in ("psycopg", "psycopg2"):
        args["connect_timeout"] = max(2, whole)  # libpq's minimum
        server = f"-c statement_timeout={math.ceil(timeout * 1000)}"
        options = url.query.get("options")
        # The URL's own options come last: a -c of theirs wins.
        args["options"] = f"{server} {options}" if isinstance(options, str) else server
        return _unless_in_url(url, args), True
    if driver == "pg8000":
        args["timeout"] = timeout
    elif url.get_backend_name() in ("mysql", "mariadb"):
        exact = driver == "pymysql"  # the others take whole seconds
        for name in ("connect_timeout", "read_timeout", "write_timeout"):
            args[name] = timeout if exact else whole
    return _unless_in_url(url, args), False


def _unless_in_url(url: URL, args: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in args.items() if k == "options" or k not in url.query}


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

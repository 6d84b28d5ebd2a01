"""The extension's own tables are created on first use, also when several
processes of a fresh deployment do it at the same time.

Each backend is tested for real: another connection creates the tables
between the extension's check and its ``CREATE`` (the race, made certain by
a ``before_create`` hook), and several apps with engines of their own create
them at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from flask import Flask

from flask_cocart_jwt.models import REFRESH_TOKENS_TABLE, SESSIONS_TABLE
from tests.conftest import AuthActions
from tests.support import app_state


def test_tables_created_by_another_process_meanwhile(
    new_app: Callable[..., Flask], database_uri: str
) -> None:
    """A ``CREATE TABLE`` that finds the table already there (another worker
    won the race) is not an error: the first login still answers 200."""
    app = new_app()
    tables = app_state(app).store.tables
    other = sa.create_engine(database_uri)
    raced: list[str] = []

    def race(target: sa.Table, connection: Any, **kw: Any) -> None:
        if not raced:  # the other worker's create_all fires this hook too
            raced.append(target.name)
            tables.sessions.metadata.create_all(other)

    sa.event.listen(tables.sessions, "before_create", race)
    try:
        login = AuthActions(app.test_client()).login()
    finally:
        sa.event.remove(tables.sessions, "before_create", race)
        other.dispose()
    assert raced == [SESSIONS_TABLE]
    assert login.status_code == 200, login.json


def test_many_first_uses_at_once(new_app: Callable[..., Flask], database_uri: str) -> None:
    """Six apps, each with its own engine (as six workers would), create the
    tables of an empty database together: every one succeeds."""
    apps = [new_app() for _ in range(6)]
    barrier = threading.Barrier(len(apps))
    errors: list[BaseException] = []

    def first_use(app: Flask) -> None:
        try:
            barrier.wait(timeout=30)
            app_state(app).store.engine  # noqa: B018 - creates the tables
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=first_use, args=(app,)) for app in apps]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    assert not any(thread.is_alive() for thread in threads)
    engine = sa.create_engine(database_uri)
    try:
        names = set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert {SESSIONS_TABLE, REFRESH_TOKENS_TABLE} <= names
    for app in apps:
        assert AuthActions(app.test_client()).login().status_code == 200

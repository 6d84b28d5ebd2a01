"""Upgrading 0.1's token tables: on first use in the extension's own database (by any
number of processes), and with Flask-Migrate in the app's ``db``."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from flask_cocart_jwt.models import NEW_SESSION_COLUMNS, NEW_SESSION_INDEXES, define_tables
from flask_cocart_jwt.schema import upgrade_tables
from tests.conftest import SECRET, AuthActions, assert_error
from tests.support import AppFactory, app_state


@pytest.fixture
def tables_of_0_1(database_uri: str) -> Iterator[sa.Engine]:
    """An engine on ``database_uri`` holding the token tables as 0.1 made them,
    with one session of 0.1 in them."""
    engine = sa.create_engine(database_uri)
    tables = define_tables(sa.MetaData())
    tables.sessions.metadata.create_all(engine)
    indexes = {str(index.name): index for index in tables.sessions.indexes}
    with engine.begin() as conn:
        for name in NEW_SESSION_INDEXES:
            indexes[name].drop(conn)
        for name in NEW_SESSION_COLUMNS:
            conn.exec_driver_sql(f"ALTER TABLE cocart_jwt_sessions DROP COLUMN {name}")
        now = int(time.time())
        conn.execute(
            sa.text(
                "INSERT INTO cocart_jwt_sessions (id, identity, created_at, last_used_at, "
                "expires_at, revoked_at) VALUES ('s01', 'alice', :now, :now, :end, :now)"
            ),
            {"now": now, "end": now + 3600},
        )
    assert not set(NEW_SESSION_COLUMNS) & columns(engine)
    try:
        yield engine
    finally:
        engine.dispose()


def columns(engine: sa.Engine) -> set[str]:
    return {column["name"] for column in sa.inspect(engine).get_columns("cocart_jwt_sessions")}


def index_names(engine: sa.Engine) -> set[str]:
    return {str(index["name"]) for index in sa.inspect(engine).get_indexes("cocart_jwt_sessions")}


def test_tables_of_0_1_are_upgraded_on_first_use(
    tables_of_0_1: sa.Engine, new_app: AppFactory
) -> None:
    app = new_app()
    auth = AuthActions(app.test_client())
    tokens = auth.tokens()
    assert set(NEW_SESSION_COLUMNS) <= columns(tables_of_0_1)
    assert set(NEW_SESSION_INDEXES) <= index_names(tables_of_0_1)
    refreshed = auth.refresh(tokens["refresh_token"]).json
    assert auth.post("/auth/revoke", refreshed["access_token"]).json == {"revoked": True}
    assert_error(auth.get("/me", refreshed["access_token"]), 401, "session_revoked")
    revocations = app_state(app).revocations
    assert revocations is not None
    revocations.sync()  # the session of 0.1, revoked by 0.1, is read too
    assert revocations.is_revoked("s01")


def test_processes_upgrading_at_once_all_succeed(
    tables_of_0_1: sa.Engine, database_uri: str
) -> None:
    engines = [sa.create_engine(database_uri) for _ in range(4)]
    tables = define_tables(sa.MetaData())
    start = threading.Barrier(len(engines))
    errors: list[BaseException] = []

    def upgrade(engine: sa.Engine) -> None:
        try:
            start.wait(timeout=30)
            upgrade_tables(engine, tables)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=upgrade, args=(engine,)) for engine in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for engine in engines:
        engine.dispose()
    assert errors == []
    assert set(NEW_SESSION_COLUMNS) <= columns(tables_of_0_1)
    assert set(NEW_SESSION_INDEXES) <= index_names(tables_of_0_1)


def test_a_real_error_is_not_taken_for_a_race(tables_of_0_1: sa.Engine) -> None:
    """An ALTER that fails while the column is still missing raises."""

    def refuse(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.startswith("ALTER TABLE"):
            raise sa.exc.OperationalError(statement, None, Exception("no privilege"))

    sa.event.listen(tables_of_0_1, "before_cursor_execute", refuse)
    with pytest.raises(sa.exc.OperationalError):
        upgrade_tables(tables_of_0_1, define_tables(sa.MetaData()))
    assert not set(NEW_SESSION_COLUMNS) & columns(tables_of_0_1)


# Flask-Migrate's own env.py template still calls db.get_engine().
@pytest.mark.filterwarnings("ignore:'get_engine' is deprecated:DeprecationWarning")
def test_flask_migrate_finds_what_0_2_adds(tmp_path: Any) -> None:
    """With ``db``, ``flask db migrate`` on 0.1's tables writes the upgrade."""
    from flask_migrate import init, migrate, upgrade

    from examples import factory

    url = f"sqlite:///{tmp_path / 'app.sqlite3'}"
    app = factory.create_app(
        {"TESTING": True, "SQLALCHEMY_DATABASE_URI": url, "COCART_JWT_SECRET_KEY": SECRET}
    )
    with app.app_context():
        factory.db.create_all()
        engine = factory.db.engine
        indexes = {
            str(index.name): index
            for index in factory.db.metadata.tables["cocart_jwt_sessions"].indexes
        }
        with engine.begin() as conn:
            for name in NEW_SESSION_INDEXES:
                indexes[name].drop(conn)
            for name in NEW_SESSION_COLUMNS:
                conn.exec_driver_sql(f"ALTER TABLE cocart_jwt_sessions DROP COLUMN {name}")
        directory = str(tmp_path / "migrations")
        init(directory=directory)
        migrate(directory=directory, message="cocart-jwt 0.2")
        script = "".join(p.read_text() for p in (tmp_path / "migrations" / "versions").glob("*.py"))
        for name in (*NEW_SESSION_COLUMNS, *NEW_SESSION_INDEXES):
            assert name in script
        upgrade(directory=directory)
        assert set(NEW_SESSION_COLUMNS) <= columns(engine)
        assert set(NEW_SESSION_INDEXES) <= index_names(engine)

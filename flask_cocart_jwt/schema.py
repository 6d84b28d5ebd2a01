"""Upgrading 0.1's token tables in the extension's own database.

Only for the embedded database (no ``db`` given to the extension): with the
user's ``db``, the tables are the user's to create and migrate (see the
upgrade notes in the changelog).

Every worker process runs this on its first use of the database, and several
start at once: an ``ALTER TABLE`` or ``CREATE INDEX`` that loses the race to
another process fails, and is then checked against what the winner made
rather than reported.
"""

from __future__ import annotations

from sqlalchemy import Engine, inspect
from sqlalchemy import exc as sa_exc
from sqlalchemy.schema import CreateColumn

from .models import NEW_SESSION_COLUMNS, NEW_SESSION_INDEXES, Tables


def upgrade_tables(engine: Engine, tables: Tables) -> None:
    """Add the columns and indexes that 0.1's token tables lack.

    Called after the tables were created (or found): on tables made by this
    version it only looks at their columns and indexes.

    :raises sqlalchemy.exc.DBAPIError: the database refused, for another
        reason than a concurrent process having done the same.
    """
    sessions = tables.sessions
    present = {column["name"] for column in inspect(engine).get_columns(sessions.name)}
    for name in NEW_SESSION_COLUMNS:
        if name in present:
            continue
        ddl = CreateColumn(sessions.c[name]).compile(dialect=engine.dialect)
        try:
            with engine.begin() as conn:
                conn.exec_driver_sql(f"ALTER TABLE {sessions.name} ADD COLUMN {ddl}")
        except sa_exc.DBAPIError:
            columns = inspect(engine).get_columns(sessions.name)
            if name not in {column["name"] for column in columns}:
                raise
    indexes = {str(index.name): index for index in sessions.indexes}
    for name in NEW_SESSION_INDEXES:
        try:
            with engine.begin() as conn:
                indexes[name].create(conn, checkfirst=True)
        except sa_exc.DBAPIError:
            if name not in {i["name"] for i in inspect(engine).get_indexes(sessions.name)}:
                raise

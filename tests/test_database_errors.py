"""The database-error helpers of ``flask_cocart_jwt.database``.

``database_errors_as_503`` turns "database unavailable" into
``ServiceUnavailable`` and lets other errors through; ``close_session_quietly``
closes the user's ``db.session``.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from flask_cocart_jwt.database import close_session_quietly, database_errors_as_503
from flask_cocart_jwt.exceptions import ServiceUnavailable


def test_database_errors_as_503_turns_connection_errors_into_503(down_engine: sa.Engine) -> None:
    with (
        pytest.raises(ServiceUnavailable) as info,
        database_errors_as_503(),
        down_engine.connect() as conn,
    ):
        conn.execute(sa.text("SELECT 1"))
    assert isinstance(info.value.__cause__, sa.exc.OperationalError)
    assert info.value.status_code == 503
    assert info.value.headers["Retry-After"] == str(info.value.retry_after)


def test_database_errors_as_503_lets_other_errors_through() -> None:
    with pytest.raises(ValueError, match="not ours"), database_errors_as_503():
        raise ValueError("not ours")
    integrity = sa.exc.IntegrityError("INSERT", {}, Exception("duplicate"))
    with pytest.raises(sa.exc.IntegrityError), database_errors_as_503():
        raise integrity
    with database_errors_as_503():
        pass  # nothing raised, nothing changed


def test_close_session_quietly_on_a_live_database(tmp_path: Any) -> None:
    db = SQLAlchemy()
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{tmp_path / 'users.sqlite3'}"
    db.init_app(app)
    with app.app_context():
        close_session_quietly(db.session)  # no session in this scope: nothing to do
        assert not db.session.registry.has()
        db.session.execute(sa.text("SELECT 1"))
        close_session_quietly(db.session)
        assert db.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
        db.engine.dispose()

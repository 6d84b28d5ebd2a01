"""``watch_user_model``, and the token tables on the user's own ``db``.

Two modes, each on SQLite, PostgreSQL and MariaDB: ``same_db`` gives the
extension the app's Flask-SQLAlchemy ``db`` (the token tables join its
metadata); ``embedded`` keeps the tokens in ``COCART_JWT_DATABASE_URI`` while
the users live in another (SQLite) database.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import Mapped, mapped_column

from flask_cocart_jwt import CoCartJWT, session_revoked
from tests.conftest import NO_LIMITS, SECRET, AuthActions, assert_error
from tests.support import AppFactory, close_app, table_rows


@dataclass
class Watched:
    app: Flask
    db: SQLAlchemy
    ext: CoCartJWT
    account: Any
    same_db: bool

    def update(self, identity: str, **values: Any) -> None:
        with self.app.app_context():
            row = self.db.session.get(self.account, identity)
            for name, value in values.items():
                setattr(row, name, value)
            self.db.session.commit()

    def delete(self, identity: str) -> None:
        with self.app.app_context():
            self.db.session.delete(self.db.session.get(self.account, identity))
            self.db.session.commit()


def build(make_app: AppFactory, uri: str, tmp_path: Any, same_db: bool) -> Watched:
    db = SQLAlchemy()

    class Account(db.Model):  # type: ignore[name-defined,misc]
        __tablename__ = "cocart_test_accounts"
        id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
        name: Mapped[str] = mapped_column(sa.String(64), default="")
        email: Mapped[str] = mapped_column(sa.String(255))
        password_hash: Mapped[str] = mapped_column(sa.String(255))

    ext = CoCartJWT(db=db) if same_db else CoCartJWT()
    config: dict[str, Any] = {
        "SQLALCHEMY_DATABASE_URI": uri if same_db else f"sqlite:///{tmp_path / 'users.db'}",
        "COCART_JWT_RATELIMIT_ENABLED": False,
    }
    if not same_db:
        config["COCART_JWT_DATABASE_URI"] = uri
    app = make_app(extension=ext, **config)
    db.init_app(app)
    ext.watch_user_model(Account)
    with app.app_context():
        db.drop_all()
        db.create_all()
        for name in ("alice", "bob"):
            db.session.add(Account(id=name, email=f"{name}@example.com", password_hash="h1"))
        db.session.commit()
    return Watched(app, db, ext, Account, same_db)


@pytest.fixture(params=["same_db", "embedded"])
def watched(
    request: pytest.FixtureRequest, make_app: AppFactory, database_uri: str, tmp_path: Any
) -> Iterator[Watched]:
    w = build(make_app, database_uri, tmp_path, request.param == "same_db")
    try:
        yield w
    finally:
        with w.app.app_context():
            w.db.drop_all()
            w.db.engine.dispose()
        close_app(w.app)


def test_tables_on_the_users_db(make_app: AppFactory, database_uri: str, tmp_path: Any) -> None:
    w = build(make_app, database_uri, tmp_path, same_db=True)
    try:
        assert {"cocart_jwt_sessions", "cocart_jwt_refresh_tokens"} <= set(w.db.metadata.tables)
        with w.app.app_context():
            names = set(sa.inspect(w.db.engine).get_table_names())
        assert {"cocart_jwt_sessions", "cocart_jwt_refresh_tokens"} <= names
        auth = AuthActions(w.app.test_client())
        first = auth.tokens()
        second = auth.refresh(first["refresh_token"])
        assert second.status_code == 200
        assert second.json["refresh_token"] != first["refresh_token"]
        with w.app.app_context():
            assert w.db.session.execute(sa.text("SELECT 1")).scalar() == 1
            w.db.session.rollback()  # the user's session is untouched by the extension
        rows = table_rows(w.app, "refresh_tokens")
        assert len(rows) == 2
        assert first["refresh_token"] not in repr(rows)
        auth.refresh(second.json["refresh_token"])
        assert_error(auth.refresh(first["refresh_token"]), 401, "refresh_token_reused")
    finally:
        with w.app.app_context():
            w.db.drop_all()
            w.db.engine.dispose()
        close_app(w.app)


def test_db_and_database_uri_conflict(make_app: AppFactory) -> None:
    from flask_cocart_jwt import ConfigurationError

    with pytest.raises(ConfigurationError, match="COCART_JWT_DATABASE_URI"):
        make_app(extension=CoCartJWT(db=SQLAlchemy()), COCART_JWT_DATABASE_URI="sqlite://")


@pytest.mark.parametrize("column", ["password_hash", "email"])
def test_credentials_change_revokes(watched: Watched, column: str) -> None:
    auth = AuthActions(watched.app.test_client())
    alice = [auth.tokens(), auth.tokens()]
    bob = auth.tokens("bob")
    reasons: list[Any] = []
    with session_revoked.connected_to(lambda _s, **kw: reasons.append(kw), watched.app):
        watched.update("alice", **{column: "changed"})
    assert [r["reason"] for r in reasons] == ["credentials_changed"]
    assert set(reasons[0]["session_ids"]) == {t["session_id"] for t in alice}
    for tokens in alice:
        assert_error(auth.get("/me", tokens["access_token"]), 401, "session_revoked")
        assert_error(auth.refresh(tokens["refresh_token"]), 401, "invalid_refresh_token")
    assert auth.refresh(bob["refresh_token"]).status_code == 200
    assert auth.refresh(auth.tokens()["refresh_token"]).status_code == 200  # log in again


def test_identity_column_change_revokes_the_old_identity(tmp_path: Any) -> None:
    db = SQLAlchemy()

    class Member(db.Model):  # type: ignore[name-defined,misc]
        id: Mapped[int] = mapped_column(primary_key=True)
        email: Mapped[str] = mapped_column(sa.String(255))
        password_hash: Mapped[str] = mapped_column(sa.String(255), default="")

    ext = CoCartJWT(db=db)
    app = Flask("watch_identity", instance_path=str(tmp_path))
    app.config.update(
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'members.db'}",
        COCART_JWT_SECRET_KEY=SECRET,
        **NO_LIMITS,
    )
    db.init_app(app)
    ext.init_app(app)
    ext.watch_user_model(Member, identity_attr="email")
    with app.app_context():
        db.create_all()
        db.session.add(Member(id=1, email="a@example.com"))
        db.session.commit()
    with app.test_request_context():
        ext.issue_tokens(Member(id=1, email="a@example.com"))
    ext.register_user_identity_loader(lambda member: member.email)
    with app.test_request_context():
        ext.issue_tokens(Member(id=1, email="a@example.com"))
        assert len(ext.list_sessions("a@example.com")) == 1
    with app.app_context():
        member = db.session.get(Member, 1)
        assert member is not None
        member.email = "b@example.com"
        db.session.commit()
    with app.test_request_context():
        assert ext.list_sessions("a@example.com") == []


def test_other_columns_do_not_revoke(watched: Watched) -> None:
    auth = AuthActions(watched.app.test_client())
    tokens = auth.tokens()
    watched.update("alice", name="Alice", password_hash="h1")  # same hash: no change
    assert auth.get("/me", tokens["access_token"]).status_code == 200
    assert auth.refresh(tokens["refresh_token"]).status_code == 200


def test_deletion_revokes(watched: Watched) -> None:
    auth = AuthActions(watched.app.test_client())
    tokens = auth.tokens()
    bob = auth.tokens("bob")
    watched.delete("alice")
    assert_error(auth.get("/me", tokens["access_token"]), 401, "session_revoked")
    assert_error(auth.refresh(tokens["refresh_token"]), 401, "invalid_refresh_token")
    assert auth.get("/me", bob["access_token"]).status_code == 200
    reasons = {r["identity"]: r["revoked_reason"] for r in table_rows(watched.app, "sessions")}
    assert reasons == {"alice": "user_deleted", "bob": None}


def test_rolled_back_change(watched: Watched) -> None:
    auth = AuthActions(watched.app.test_client())
    tokens = auth.tokens()
    with watched.app.app_context():
        row = watched.db.session.get(watched.account, "alice")
        row.password_hash = "h2"
        watched.db.session.flush()
        watched.db.session.rollback()
    me = auth.get("/me", tokens["access_token"])
    if watched.same_db:
        # The revocation rolled back with the change that caused it.
        assert me.status_code == 200
        assert auth.refresh(tokens["refresh_token"]).status_code == 200
    else:
        # A transaction of its own: logged out anyway (the safe side).
        assert_error(me, 401, "session_revoked")
        assert_error(auth.refresh(tokens["refresh_token"]), 401, "invalid_refresh_token")


def test_user_loader_sees_deleted_user(watched: Watched) -> None:
    app, db, account = watched.app, watched.db, watched.account
    watched.ext.user_loader(lambda identity: db.session.get(account, identity))
    auth = AuthActions(app.test_client())
    tokens = auth.tokens()
    assert auth.get("/whoami", tokens["access_token"]).json == {"id": "alice"}
    with app.app_context():
        # Bypass the mapper events: the row vanishes without a revocation.
        db.session.execute(sa.delete(account).where(account.id == "alice"))
        db.session.commit()
    assert_error(auth.refresh(tokens["refresh_token"]), 401, "user_not_found")
    assert_error(auth.get("/me", tokens["access_token"]), 401, "user_not_found")


def test_unknown_attribute(watched: Watched) -> None:
    with pytest.raises(AttributeError, match="hashed_pw"):
        watched.ext.watch_user_model(watched.account, revoke_on=("hashed_pw",))

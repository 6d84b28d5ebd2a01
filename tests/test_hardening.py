"""Regression tests for the findings of the security review.

Each test names the defect it guards against; each failed before its fix.
"""

from __future__ import annotations

import gc
import time
import weakref
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask, abort, request
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import Mapped, mapped_column

from flask_cocart_jwt import CoCartJWT
from flask_cocart_jwt.config import load_settings
from flask_cocart_jwt.keys import b64url
from flask_cocart_jwt.state import current_extension
from flask_cocart_jwt.store import RefreshContext
from tests.conftest import SECRET, AuthActions, assert_error

NO_LIMITS = {"COCART_JWT_RATELIMIT_ENABLED": False}


def test_a_fast_clock_elsewhere_does_not_hide_revocations(make_app: Callable[..., Flask]) -> None:
    """A revocation stamped minutes ahead (a host with a fast clock) must not move
    a cursor past the revocations of hosts with correct clocks."""
    first = make_app(**NO_LIMITS)
    uri = first.extensions["cocart_jwt"]._states[first].settings.database_uri
    second = make_app(COCART_JWT_DATABASE_URI=uri, **NO_LIMITS)
    auth1, auth2 = AuthActions(first.test_client()), AuthActions(second.test_client())
    skewed, victim = auth2.tokens("alice"), auth2.tokens("bob")
    assert auth1.get("/me", victim["access_token"]).status_code == 200  # view loaded
    with second.test_request_context():
        current_extension()[0].revoke_session(skewed["session_id"])
    engine = sa.create_engine(uri)
    with engine.begin() as conn:  # as if written by a host five minutes ahead
        conn.execute(
            sa.text("UPDATE cocart_jwt_sessions SET revoked_at = :at WHERE id = :id"),
            {"at": int(time.time()) + 300, "id": skewed["session_id"]},
        )
    engine.dispose()
    with first.app_context():
        _, view_state = current_extension()
        assert view_state.revocations is not None
        view_state.revocations.sync()
    with second.test_request_context():
        current_extension()[0].revoke_session(victim["session_id"])
    with first.app_context():
        current_extension()[1].revocations.sync()  # type: ignore[union-attr]
    assert_error(auth1.get("/me", victim["access_token"]), 401, "session_revoked")


def test_retry_after_revocation_is_refused(make_app: Callable[..., Flask]) -> None:
    """A retry inside the reuse interval must not hand out the successor of a
    session revoked after the token was read (revoke wins)."""
    app = make_app(**NO_LIMITS)
    auth = AuthActions(app.test_client())
    tokens = auth.tokens()
    assert auth.refresh(tokens["refresh_token"]).status_code == 200
    with app.test_request_context():
        ext, state = current_extension()
        store = state.store
        row = store._token_row(tokens["refresh_token"])  # read before the revoke
        ext.revoke_session(tokens["session_id"])
        secret = state.settings.keyring.derive(
            "refresh-successor", tokens["refresh_token"].encode()
        )
        successor = "rt_" + b64url(secret)
        ctx = RefreshContext(now=int(time.time()), idle_seconds=3600, reuse_interval=10)
        assert store._retry(row, successor, ctx) is None


def test_deleted_user_on_blueprint_bearer_routes(make_app: Callable[..., Flask]) -> None:
    """``user_not_found`` on every route that takes a Bearer token, not only on
    the app's protected views."""
    app = make_app(**NO_LIMITS)
    users = {"alice"}
    app.extensions["cocart_jwt"].register_user_loader(lambda i: i if i in users else None)
    auth = AuthActions(app.test_client())
    token = auth.tokens()["access_token"]
    users.clear()
    for response in (
        auth.get("/me", token),
        auth.post("/auth/validate-token", token),
        auth.get("/auth/sessions", token),
        auth.post("/auth/revoke-all", token),
    ):
        assert_error(response, 401, "user_not_found")


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


def test_settings_repr_hides_uris(tmp_path: Any) -> None:
    settings = load_settings(
        {
            "COCART_JWT_SECRET_KEY": SECRET,
            "COCART_JWT_DATABASE_URI": "postgresql://user:db-password@host/db",
            "COCART_JWT_RATELIMIT_STORAGE_URI": "redis://:redis-password@host:6379/0",
        },
        str(tmp_path),
    )
    text = repr(settings)
    assert "db-password" not in text
    assert "redis-password" not in text
    assert SECRET not in text


def test_an_apps_own_429_stays_a_429(make_app: Callable[..., Flask]) -> None:
    # e.g. a limit of the app's own, in its before_request, on the token routes
    app = make_app(COCART_JWT_RATELIMIT_ENABLED=False)
    seen: list[str] = []

    @app.before_request
    def own_limit() -> None:
        if request.blueprint == "cocart_jwt":
            seen.append(request.path)
            if len(seen) > 1:
                abort(429)

    client = app.test_client()
    client.post("/auth/login", json={"username": "alice", "password": "wonderland"})
    response = client.post("/auth/login", json={"username": "alice", "password": "wonderland"})
    assert_error(response, 429, "rate_limited")
    assert "Retry-After" in response.headers


def test_token_type_follows_the_header_type(make_app: Callable[..., Flask]) -> None:
    app = make_app(COCART_JWT_HEADER_TYPE="JWT", **NO_LIMITS)
    body = AuthActions(app.test_client()).tokens()
    assert body["token_type"] == "JWT"


def test_apps_with_a_db_are_garbage_collected(tmp_path: Any) -> None:
    db = SQLAlchemy()
    ext = CoCartJWT(db=db)
    app = Flask("collected", instance_path=str(tmp_path))
    app.config.update(
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'gc.db'}",
        COCART_JWT_SECRET_KEY=SECRET,
    )
    db.init_app(app)
    ext.init_app(app)
    ref = weakref.ref(app)
    del app
    gc.collect()
    assert ref() is None


def test_a_failing_signal_receiver_is_not_a_storage_outage(
    make_app: Callable[..., Flask],
) -> None:
    from flask_cocart_jwt import rate_limit_exceeded

    app = make_app(
        COCART_JWT_LIMIT_LOGIN_PER_IP="1 per minute",
        COCART_JWT_RATELIMIT_ON_STORAGE_ERROR="reject",
    )

    def receiver(_sender: Any, **_kwargs: Any) -> None:
        raise LookupError("a bug in the app's receiver")

    client = app.test_client()
    credentials = {"username": "alice", "password": "wonderland"}
    with rate_limit_exceeded.connected_to(receiver, app):
        assert client.post("/auth/login", json=credentials).status_code == 200
        with pytest.raises(LookupError):  # the receiver's own error, as with Flask's signals
            client.post("/auth/login", json=credentials)
    # ... and the storage was not marked down: limits still count normally.
    limits = app.extensions["cocart_jwt"]._states[app].limits
    assert limits._failures == 0


def test_access_tokens_never_outlive_their_session(make_app: Callable[..., Flask]) -> None:
    """A refresh shortly before the session's absolute expiry gets an access
    token that ends with the session, and ``expires_in`` says so."""
    import time_machine

    app = make_app(
        COCART_JWT_SESSION_MAX_AGE=3600,
        COCART_JWT_ACCESS_TOKEN_EXPIRES=900,
        COCART_JWT_REFRESH_TOKEN_EXPIRES=3600,
        **NO_LIMITS,
    )
    auth = AuthActions(app.test_client())
    with time_machine.travel(1_800_000_000, tick=False):
        tokens = auth.tokens()
        assert tokens["expires_in"] == 900
    with time_machine.travel(1_800_000_000 + 3600 - 60, tick=False):
        refreshed = auth.refresh(tokens["refresh_token"])
        assert refreshed.status_code == 200, refreshed.json
        assert refreshed.json["expires_in"] == 60
        me = auth.get("/me", refreshed.json["access_token"])
        assert me.json["claims"]["exp"] == 1_800_000_000 + 3600

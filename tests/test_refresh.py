"""Refresh tokens: hashed storage, rotation, re-use detection and lifetimes.

Every test runs on SQLite, PostgreSQL and MariaDB (the ``database_uri``
fixture).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
import time_machine
from flask import Flask
from sqlalchemy import event

from flask_cocart_jwt import refresh_token_reused
from flask_cocart_jwt.refresh_tokens import hash_refresh_token
from flask_cocart_jwt.rotation import successor_of
from tests.conftest import NO_LIMITS, AuthActions, User, assert_error
from tests.support import (
    AppFactory,
    app_factory,
    app_state,
    close_app,
    current_extension,
    live_tokens,
    table_rows,
)


def test_rotation_stores_only_hashes(new_app: AppFactory) -> None:
    app = new_app()
    auth = AuthActions(app.test_client())
    first = auth.tokens()
    second = auth.refresh(first["refresh_token"])
    assert second.status_code == 200, second.json
    body = second.json
    assert body["refresh_token"] != first["refresh_token"]
    assert body["refresh_token"].startswith("rt_")
    assert body["session_id"] == first["session_id"]
    assert body["token_type"] == "Bearer"
    assert isinstance(body["refresh_token_expires_in"], int)
    assert auth.get("/me", body["access_token"]).status_code == 200

    rows = table_rows(app, "refresh_tokens")
    assert len(rows) == 2
    used = [row for row in rows if row["used_at"] is not None]
    assert len(used) == 1
    assert isinstance(used[0]["used_at"], int)
    assert [row["parent_id"] for row in rows if row["used_at"] is None] == [used[0]["id"]]
    dump = repr(rows) + repr(table_rows(app, "sessions"))
    for raw in (first["refresh_token"], body["refresh_token"]):
        assert raw not in dump
        assert raw[3:] not in dump
    for row in rows:
        assert len(row["token_hash"]) == 64
        int(row["token_hash"], 16)


def test_replay_outside_interval_revokes_session(new_app: AppFactory) -> None:
    app = new_app(COCART_JWT_REFRESH_REUSE_INTERVAL=0)
    auth = AuthActions(app.test_client())
    first = auth.tokens()
    second = auth.refresh(first["refresh_token"]).json
    assert auth.get("/me", second["access_token"]).status_code == 200

    seen: list[dict[str, Any]] = []

    def record(sender: Flask, **kwargs: Any) -> None:
        seen.append(kwargs)

    with refresh_token_reused.connected_to(record, app):
        assert_error(auth.refresh(first["refresh_token"]), 401, "refresh_token_reused")
    assert seen == [{"identity": "alice", "session_id": first["session_id"]}]
    session = table_rows(app, "sessions")[0]
    assert session["revoked_reason"] == "refresh_token_reused"
    assert_error(auth.refresh(second["refresh_token"]), 401, "invalid_refresh_token")
    assert_error(auth.refresh(first["refresh_token"]), 401, "invalid_refresh_token")
    for access in (first["access_token"], second["access_token"]):
        assert_error(auth.get("/me", access), 401, "session_revoked")
    # Another session of the same user is not affected.
    other = auth.tokens()
    assert auth.refresh(other["refresh_token"]).status_code == 200


def test_retry_inside_interval_returns_same_successor(new_app: AppFactory) -> None:
    app = new_app()
    auth = AuthActions(app.test_client())
    with time_machine.travel(time.time(), tick=False) as clock:
        first = auth.tokens()
        clock.shift(1)
        second = auth.refresh(first["refresh_token"]).json
        clock.shift(5)
        retry = auth.refresh(first["refresh_token"])
        assert retry.status_code == 200, retry.json
        assert retry.json["refresh_token"] == second["refresh_token"]
        assert retry.json["access_token"] != second["access_token"]
        assert auth.get("/me", retry.json["access_token"]).status_code == 200
        assert len(live_tokens(app, first["session_id"])) == 1

        third = auth.refresh(second["refresh_token"])
        assert third.status_code == 200
        # The successor was used: replaying its parent is re-use, even in the interval.
        assert_error(auth.refresh(first["refresh_token"]), 401, "refresh_token_reused")
        assert_error(auth.refresh(third.json["refresh_token"]), 401, "invalid_refresh_token")


def test_retry_after_interval_revokes(new_app: AppFactory) -> None:
    app = new_app(COCART_JWT_REFRESH_REUSE_INTERVAL=timedelta(seconds=10))
    auth = AuthActions(app.test_client())
    with time_machine.travel(time.time(), tick=False) as clock:
        first = auth.tokens()
        second = auth.refresh(first["refresh_token"]).json
        clock.shift(11)
        assert_error(auth.refresh(first["refresh_token"]), 401, "refresh_token_reused")
        assert_error(auth.refresh(second["refresh_token"]), 401, "invalid_refresh_token")


def test_retry_inside_interval_after_revocation_is_refused(make_app: Callable[..., Flask]) -> None:
    """A retry inside the reuse interval must not hand out the successor of a
    session revoked after the token was read (revoke wins)."""
    app = make_app(**NO_LIMITS)
    auth = AuthActions(app.test_client())
    tokens = auth.tokens()
    assert auth.refresh(tokens["refresh_token"]).status_code == 200
    with app.test_request_context():
        ext, state = current_extension()
        store = state.store
        row = store.token_row(hash_refresh_token(tokens["refresh_token"]))  # before the revoke
        ext.revoke_session(tokens["session_id"])
        successor = successor_of(tokens["refresh_token"], state.settings)
        assert store.child_of(row.id, hash_refresh_token(successor)) is None


def test_grandparent_replay_inside_interval_revokes(new_app: AppFactory) -> None:
    app = new_app()
    auth = AuthActions(app.test_client())
    first = auth.tokens()
    second = auth.refresh(first["refresh_token"]).json
    auth.refresh(second["refresh_token"])
    assert_error(auth.refresh(first["refresh_token"]), 401, "refresh_token_reused")


def test_refresh_after_logout(new_app: AppFactory) -> None:
    app = new_app()
    auth = AuthActions(app.test_client())
    tokens = auth.tokens()
    out = auth.client.post("/auth/revoke", json={"refresh_token": tokens["refresh_token"]})
    assert out.status_code == 200
    assert out.json == {"revoked": True}
    assert_error(auth.refresh(tokens["refresh_token"]), 401, "invalid_refresh_token")
    assert_error(auth.get("/me", tokens["access_token"]), 401, "session_revoked")
    unknown = auth.client.post("/auth/revoke", json={"refresh_token": "rt_" + "x" * 43})
    assert unknown.status_code == 200
    assert unknown.json == {"revoked": True}


def test_refresh_after_logout_with_access_token(new_app: AppFactory) -> None:
    app = new_app()
    auth = AuthActions(app.test_client())
    tokens = auth.tokens()
    assert auth.post("/auth/revoke", tokens["access_token"]).json == {"revoked": True}
    assert_error(auth.refresh(tokens["refresh_token"]), 401, "invalid_refresh_token")


def test_idle_expiry(new_app: AppFactory) -> None:
    app = new_app(COCART_JWT_REFRESH_TOKEN_EXPIRES=timedelta(hours=1))
    auth = AuthActions(app.test_client())
    with time_machine.travel(time.time(), tick=False) as clock:
        tokens = auth.tokens()
        assert tokens["refresh_token_expires_in"] == 3600
        clock.shift(3599)
        fresh = auth.refresh(tokens["refresh_token"])
        assert fresh.status_code == 200
        clock.shift(3600)
        assert_error(auth.refresh(fresh.json["refresh_token"]), 401, "refresh_token_expired")


HOME = {"REMOTE_ADDR": "192.0.2.1", "HTTP_USER_AGENT": "app/1"}


@pytest.mark.parametrize(
    ("config", "away", "shift", "code"),
    [
        ({"COCART_JWT_BIND_IP": True}, {"REMOTE_ADDR": "198.51.100.9"}, 0, "invalid_refresh_token"),
        (
            {"COCART_JWT_BIND_USER_AGENT": True},
            {"HTTP_USER_AGENT": "curl/8"},
            0,
            "invalid_refresh_token",
        ),
        ({"COCART_JWT_REFRESH_TOKEN_EXPIRES": 60}, {}, 61, "refresh_token_expired"),
    ],
    ids=["ip", "user-agent", "expired"],
)
def test_a_refused_refresh_consumes_nothing(
    new_app: AppFactory, config: dict[str, Any], away: dict[str, str], shift: int, code: str
) -> None:
    """Where the token is consumed first and checked after (PostgreSQL's
    ``UPDATE ... RETURNING``), a refusal rolls the consumption back: on every
    backend, nothing was written."""
    app = new_app(**config)
    client = app.test_client()
    with time_machine.travel(time.time(), tick=False) as clock:
        tokens = client.post(
            "/auth/login", json={"username": "alice", "password": "wonderland"}, environ_base=HOME
        ).json
        body = {"refresh_token": tokens["refresh_token"]}
        sessions, refresh_tokens = table_rows(app, "sessions"), table_rows(app, "refresh_tokens")
        clock.shift(shift)
        refused = client.post("/auth/refresh-token", json=body, environ_base={**HOME, **away})
        assert_error(refused, 401, code)
        assert table_rows(app, "sessions") == sessions
        assert table_rows(app, "refresh_tokens") == refresh_tokens
        if shift == 0:  # the session's own client still rotates it
            ok = client.post("/auth/refresh-token", json=body, environ_base=HOME)
            assert ok.status_code == 200, ok.json
            assert len(live_tokens(app, tokens["session_id"])) == 1


def test_refresh_after_logout_consumes_nothing(new_app: AppFactory) -> None:
    app = new_app()
    auth = AuthActions(app.test_client())
    tokens = auth.tokens()
    assert auth.post("/auth/revoke", tokens["access_token"]).json == {"revoked": True}
    before = table_rows(app, "refresh_tokens")
    assert_error(auth.refresh(tokens["refresh_token"]), 401, "invalid_refresh_token")
    assert table_rows(app, "refresh_tokens") == before


def record_statements(app: Flask) -> tuple[list[str], Callable[[], None]]:
    """The first word of each statement the store runs from now on, and a
    function that stops recording."""
    engine = app_state(app).store.engine
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement.split(None, 1)[0].upper())

    event.listen(engine, "before_cursor_execute", record)
    return statements, lambda: event.remove(engine, "before_cursor_execute", record)


@pytest.mark.parametrize("loader", [False, True], ids=["no-user-loader", "user-loader"])
def test_the_statements_of_a_refresh(new_app: AppFactory, loader: bool) -> None:
    """On PostgreSQL a refresh is one statement: it consumes its token by the
    statement that reads it (``UPDATE ... RETURNING``), touches the session
    and inserts the successor; elsewhere it reads, consumes, touches, inserts.
    With a user loader the token is read first (the loader runs outside any
    transaction), then rotated the same way."""
    app = new_app()
    if loader:
        app.extensions["cocart_jwt"].user_loader(User)
    auth = AuthActions(app.test_client())
    tokens = auth.tokens()
    statements, stop = record_statements(app)
    try:
        assert auth.refresh(tokens["refresh_token"]).status_code == 200
    finally:
        stop()
    expected = {
        "sqlite": ["SELECT", "UPDATE", "UPDATE", "INSERT"],
        "postgresql": ["SELECT", "WITH"] if loader else ["WITH"],
        "mysql": ["SELECT", "UPDATE", "UPDATE", "INSERT"],
    }
    assert statements == expected[app_state(app).store.engine.dialect.name]


@pytest.fixture(params=["postgresql", "mariadb"])
def server_app(
    request: pytest.FixtureRequest,
    make_app: Callable[..., Flask],
    server_databases: dict[str, str],
) -> Iterator[Flask]:
    """An app on a database server (SQLite has one writer at a time: nothing
    can commit between two statements of another transaction)."""
    with app_factory(make_app, server_databases[request.param]) as factory:
        yield factory()


def test_a_revocation_after_the_token_is_consumed_wins(server_app: Flask) -> None:
    """A session revoked by another connection after the refresh consumed its
    token, before the successor: the refresh is refused and rolled back."""
    app = server_app
    store = app_state(app).store
    auth = AuthActions(app.test_client())
    tokens = auth.tokens()
    before = table_rows(app, "refresh_tokens")
    revoked: list[bool] = []

    def revoke_first(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "SET last_used_at" in statement and not revoked:
            revoked.append(store.revoke_session(tokens["session_id"], "test", now=int(time.time())))

    event.listen(store.engine, "before_cursor_execute", revoke_first)
    try:
        assert_error(auth.refresh(tokens["refresh_token"]), 401, "invalid_refresh_token")
    finally:
        event.remove(store.engine, "before_cursor_execute", revoke_first)
    assert revoked == [True]
    assert table_rows(app, "refresh_tokens") == before


def test_absolute_expiry(new_app: AppFactory) -> None:
    app = new_app(
        COCART_JWT_REFRESH_TOKEN_EXPIRES=timedelta(hours=1),
        COCART_JWT_SESSION_MAX_AGE=timedelta(hours=2),
    )
    auth = AuthActions(app.test_client())
    with time_machine.travel(time.time(), tick=False) as clock:
        token = auth.tokens()["refresh_token"]
        for expected in (3600, 1200):  # the second one is capped by the session
            clock.shift(50 * 60)
            response = auth.refresh(token)
            assert response.status_code == 200, response.json
            assert response.json["refresh_token_expires_in"] == expected
            token = response.json["refresh_token"]
        clock.shift(20 * 60)
        assert_error(auth.refresh(token), 401, "refresh_token_expired")


def test_access_tokens_never_outlive_their_session(make_app: Callable[..., Flask]) -> None:
    """A refresh shortly before the session's absolute expiry gets an access
    token that ends with the session, and ``expires_in`` says so."""
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


def test_replay_after_restart(new_app: AppFactory) -> None:
    before = new_app(COCART_JWT_REFRESH_REUSE_INTERVAL=0)
    auth = AuthActions(before.test_client())
    first = auth.tokens()
    second = auth.refresh(first["refresh_token"]).json
    close_app(before)

    after = new_app(COCART_JWT_REFRESH_REUSE_INTERVAL=0)
    restarted = AuthActions(after.test_client())
    assert_error(restarted.refresh(first["refresh_token"]), 401, "refresh_token_reused")
    assert_error(restarted.refresh(second["refresh_token"]), 401, "invalid_refresh_token")
    assert_error(restarted.get("/me", second["access_token"]), 401, "session_revoked")


@pytest.mark.parametrize(
    ("value", "status", "code"),
    [
        (12345, 400, "invalid_request"),
        (["rt_abc"], 400, "invalid_request"),
        ({"token": "rt_abc"}, 400, "invalid_request"),
        (None, 400, "invalid_request"),
        (True, 400, "invalid_request"),
        ("", 400, "invalid_request"),
        ("rt_" + "a" * 10_000, 400, "invalid_request"),
        ("rt_" + "é" * 43, 401, "invalid_refresh_token"),
        ("rt_\u0000" + "a" * 42, 401, "invalid_refresh_token"),
        ("rt_short", 401, "invalid_refresh_token"),
        ("x" * 46, 401, "invalid_refresh_token"),
        ("rt_" + "a" * 43, 401, "invalid_refresh_token"),
    ],
)
def test_ill_typed_refresh_token(new_app: AppFactory, value: Any, status: int, code: str) -> None:
    auth = AuthActions(new_app().test_client())
    assert_error(auth.refresh(value), status, code)


def test_missing_or_malformed_body(new_app: AppFactory) -> None:
    client = new_app().test_client()
    assert_error(client.post("/auth/refresh-token", json={}), 400, "invalid_request")
    assert_error(client.post("/auth/refresh-token", json=["rt_x"]), 400, "invalid_request")
    assert_error(
        client.post("/auth/refresh-token", data="{", content_type="application/json"),
        400,
        "invalid_request",
    )
    assert_error(
        client.post("/auth/refresh-token", data="refresh_token=rt_x"), 400, "invalid_request"
    )


def test_access_token_is_not_a_refresh_token(new_app: AppFactory) -> None:
    auth = AuthActions(new_app().test_client())
    tokens = auth.tokens()
    assert_error(auth.refresh(tokens["access_token"]), 401, "invalid_refresh_token")
    assert_error(auth.get("/me", tokens["refresh_token"]), 401, "invalid_token")
    assert auth.refresh(tokens["refresh_token"]).status_code == 200


def test_user_loader_none_rejects_refresh(new_app: AppFactory) -> None:
    app = new_app()
    gone: set[str] = set()
    ext = app.extensions["cocart_jwt"]
    ext.user_loader(lambda identity: None if identity in gone else User(identity))
    auth = AuthActions(app.test_client())
    tokens = auth.tokens()
    gone.add("alice")
    assert_error(auth.refresh(tokens["refresh_token"]), 401, "user_not_found")
    assert_error(auth.get("/me", tokens["access_token"]), 401, "user_not_found")
    # Nothing was consumed: the token works again once the user is back.
    gone.clear()
    assert auth.refresh(tokens["refresh_token"]).status_code == 200


def _waiting_for_a_lock(conn: Any) -> bool:
    """Whether another transaction waits for a row lock (the refresh's)."""
    if conn.dialect.name == "postgresql":
        query = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
    else:  # MariaDB: the refresh's session update, still running
        query = (
            "SELECT count(*) FROM information_schema.processlist "
            "WHERE INSTR(info, 'UPDATE cocart_jwt_sessions SET last_used_at') = 1"
        )
    return bool(conn.exec_driver_sql(query).scalar())


def test_a_revocation_holding_the_session_row_wins(server_app: Flask) -> None:
    """A revocation that holds the session's row while the refresh runs: the
    refresh waits for it, then sees it (revoke wins) and writes nothing."""
    app = server_app
    store = app_state(app).store
    auth = AuthActions(app.test_client())
    tokens = auth.tokens()
    before = table_rows(app, "refresh_tokens")
    sessions = store.tables.sessions
    revoke = store.revocation(int(time.time()), "test").where(sessions.c.id == tokens["session_id"])
    answers: list[Any] = []
    others = sa.create_engine(store.engine.url)  # not the app's pool
    with others.connect() as revoker, others.connect() as observer:
        transaction = revoker.begin()
        assert revoker.execute(revoke).rowcount == 1
        token = tokens["refresh_token"]
        refresh = threading.Thread(target=lambda: answers.append(auth.refresh(token)))
        refresh.start()
        deadline = time.monotonic() + 10
        while not _waiting_for_a_lock(observer) and time.monotonic() < deadline:
            observer.rollback()  # a fresh snapshot for each look
            time.sleep(0.01)
        assert refresh.is_alive(), answers
        transaction.commit()
        refresh.join(10)
    others.dispose()
    assert_error(answers[0], 401, "invalid_refresh_token")
    assert table_rows(app, "refresh_tokens") == before

"""The access-token revocation check across processes (two apps, one database)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
import time_machine
from flask import Flask

from flask_cocart_jwt.revocation import RevocationView
from tests.conftest import NO_LIMITS, AuthActions, assert_error
from tests.support import AppFactory, app_state, close_app, current_extension, failing

#: The longest a test waits for another worker's revocation to show up.
DEADLINE = 3.0


@pytest.fixture
def fast_revocation_polling(monkeypatch: pytest.MonkeyPatch) -> None:
    """Revocation views poll every 50 ms, so that a test waits briefly for them."""
    monkeypatch.setattr(RevocationView, "poll_interval", 0.05)


def wait_for_status(auth: AuthActions, access_token: str, status: int) -> tuple[Any, float]:
    """Call ``/me`` until it answers ``status`` or the deadline passes."""
    start = time.monotonic()
    while True:
        response = auth.get("/me", access_token)
        elapsed = time.monotonic() - start
        if response.status_code == status or elapsed > DEADLINE:
            return response, elapsed
        time.sleep(0.02)  # a background thread is polling: wait for it, briefly


@pytest.mark.usefixtures("fast_revocation_polling")
def test_revocation_from_another_worker(new_app: AppFactory) -> None:
    worker_a, worker_b = new_app(), new_app()
    a, b = AuthActions(worker_a.test_client()), AuthActions(worker_b.test_client())
    tokens = a.tokens()
    other = a.tokens()
    assert b.get("/me", tokens["access_token"]).status_code == 200  # B's view is running

    assert a.post("/auth/revoke", tokens["access_token"]).json == {"revoked": True}
    assert_error(a.get("/me", tokens["access_token"]), 401, "session_revoked")  # at once
    response, elapsed = wait_for_status(b, tokens["access_token"], 401)
    assert_error(response, 401, "session_revoked")
    assert elapsed < DEADLINE
    assert b.get("/me", other["access_token"]).status_code == 200


@pytest.mark.usefixtures("fast_revocation_polling")
def test_revocation_before_the_worker_started(new_app: AppFactory) -> None:
    worker_a = new_app()
    a = AuthActions(worker_a.test_client())
    tokens = a.tokens()
    with worker_a.test_request_context():
        assert worker_a.extensions["cocart_jwt"].revoke_user("alice") == 1
    b = AuthActions(new_app().test_client())
    assert_error(b.get("/me", tokens["access_token"]), 401, "session_revoked")


@pytest.mark.usefixtures("fast_revocation_polling")
def test_reuse_seen_by_another_worker(new_app: AppFactory) -> None:
    worker_a, worker_b = new_app(COCART_JWT_REFRESH_REUSE_INTERVAL=0), new_app()
    a, b = AuthActions(worker_a.test_client()), AuthActions(worker_b.test_client())
    first = a.tokens()
    second = a.refresh(first["refresh_token"]).json
    assert b.get("/me", second["access_token"]).status_code == 200
    assert_error(a.refresh(first["refresh_token"]), 401, "refresh_token_reused")
    response, _ = wait_for_status(b, second["access_token"], 401)
    assert_error(response, 401, "session_revoked")


@pytest.mark.usefixtures("fast_revocation_polling")
def test_check_disabled(new_app: AppFactory) -> None:
    app = new_app(COCART_JWT_REVOCATION_CHECK=False)
    assert app_state(app).revocations is None
    auth = AuthActions(app.test_client())
    tokens = auth.tokens()
    assert auth.post("/auth/revoke", tokens["access_token"]).json == {"revoked": True}
    # Access tokens live until they expire; the refresh token is dead at once.
    assert auth.get("/me", tokens["access_token"]).status_code == 200
    assert_error(auth.refresh(tokens["refresh_token"]), 401, "invalid_refresh_token")


@pytest.mark.usefixtures("fast_revocation_polling")
def test_stale_view_refuses(new_app: AppFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    app = new_app()
    auth = AuthActions(app.test_client())
    tokens = auth.tokens()
    assert auth.get("/me", tokens["access_token"]).status_code == 200
    monkeypatch.setattr(RevocationView, "max_staleness", 0.0)

    def revoked_since(statement: str, params: Any) -> bool:
        return "revoked_at >=" in statement

    with failing(app, revoked_since):
        response = auth.get("/me", tokens["access_token"])
    assert_error(response, 503, "service_unavailable")
    assert response.headers["Retry-After"]
    assert auth.get("/me", tokens["access_token"]).status_code == 200


def test_a_fast_clock_elsewhere_does_not_hide_revocations(make_app: Callable[..., Flask]) -> None:
    """A revocation stamped minutes ahead (a host with a fast clock) must not move
    a cursor past the revocations of hosts with correct clocks."""
    first = make_app(**NO_LIMITS)
    uri = first.extensions["cocart_jwt"].get_service(first).settings.database_uri
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


# -- a revoked session is kept until its last access token expired -------------

HOUR = 3600


def run_sql(app: Flask, statement: str, **params: Any) -> None:
    """Run one statement on ``app``'s token database, in a transaction of its own."""
    with app_state(app).store.engine.begin() as conn:
        conn.execute(sa.text(statement), params)


def test_a_lowered_access_lifetime_does_not_bring_revoked_sessions_back(
    new_app: AppFactory,
) -> None:
    """Tokens issued under a one-hour lifetime stay refused after a restart
    with a one-second lifetime, longer than that second plus the margin."""
    before = new_app(COCART_JWT_ACCESS_TOKEN_EXPIRES=HOUR)
    auth = AuthActions(before.test_client())
    login = auth.tokens()
    refreshed = auth.refresh(login["refresh_token"]).json
    assert auth.post("/auth/revoke", refreshed["access_token"]).json == {"revoked": True}
    close_app(before)

    after = AuthActions(new_app(COCART_JWT_ACCESS_TOKEN_EXPIRES=1).test_client())
    with time_machine.travel(time.time() + 65, tick=False):
        for token in (login["access_token"], refreshed["access_token"]):
            assert_error(after.get("/me", token), 401, "session_revoked")


def test_a_retried_refresh_records_its_access_token(new_app: AppFactory) -> None:
    """A retry inside the reuse interval issues an access token that outlives
    the one of the rotation it repeats; the revocation is kept for it."""
    config = {"COCART_JWT_ACCESS_TOKEN_EXPIRES": HOUR, "COCART_JWT_REFRESH_REUSE_INTERVAL": 600}
    start = time.time()
    with time_machine.travel(start, tick=False) as traveller:
        before = new_app(**config)
        auth = AuthActions(before.test_client())
        login = auth.tokens()
        assert auth.refresh(login["refresh_token"]).status_code == 200
        traveller.shift(300)
        retried = auth.refresh(login["refresh_token"]).json  # the response was lost
        assert auth.post("/auth/revoke", retried["access_token"]).json == {"revoked": True}
        close_app(before)

        # The rotation's token expired more than the margin ago, the retry's has not.
        traveller.shift(HOUR - 300 + 100)
        restarted = new_app(**{**config, "COCART_JWT_ACCESS_TOKEN_EXPIRES": 1})
        after = AuthActions(restarted.test_client())
        assert_error(after.get("/me", retried["access_token"]), 401, "session_revoked")


def test_a_retry_racing_a_revocation_issues_no_token(
    new_app: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Revoked between the retry's check of the successor and its access token:
    revoke wins, and no access token is issued for the revoked session."""
    app = new_app(COCART_JWT_REFRESH_REUSE_INTERVAL=600)
    auth = AuthActions(app.test_client())
    login = auth.tokens()
    assert auth.refresh(login["refresh_token"]).status_code == 200
    store = app_state(app).store
    child_of = store.child_of

    def revoked_meanwhile(parent_id: int, token_hash: str) -> Any:
        child = child_of(parent_id, token_hash)
        store.revoke_session(login["session_id"], "logout", now=int(time.time()))
        return child

    monkeypatch.setattr(store, "child_of", revoked_meanwhile)
    assert_error(auth.refresh(login["refresh_token"]), 401, "invalid_refresh_token")


@pytest.mark.parametrize("revoked_by", ["0.1", "0.2"])
def test_sessions_opened_before_0_2_are_kept_for_the_refresh_token_lifetime(
    new_app: AppFactory, revoked_by: str
) -> None:
    """A session written by 0.1 has no recorded access-token expiry: its
    revocation is kept for the refresh-token lifetime after its last use."""
    config = {"COCART_JWT_ACCESS_TOKEN_EXPIRES": 1, "COCART_JWT_REFRESH_TOKEN_EXPIRES": 2 * HOUR}
    before = new_app(**{**config, "COCART_JWT_ACCESS_TOKEN_EXPIRES": HOUR})
    auth = AuthActions(before.test_client())
    login = auth.tokens()
    run_sql(
        before,
        "UPDATE cocart_jwt_sessions SET access_expires_at = NULL WHERE id = :id",
        id=login["session_id"],
    )
    if revoked_by == "0.1":
        run_sql(
            before,
            "UPDATE cocart_jwt_sessions SET revoked_at = :now, revoked_reason = 'logout' "
            "WHERE id = :id",
            id=login["session_id"],
            now=int(time.time()),
        )
    else:
        assert auth.post("/auth/revoke", login["access_token"]).json == {"revoked": True}
    close_app(before)

    with time_machine.travel(time.time() + HOUR - 60, tick=False):
        after = AuthActions(new_app(**config).test_client())
        assert_error(after.get("/me", login["access_token"]), 401, "session_revoked")
        other = after.tokens("bob")
        assert after.get("/me", other["access_token"]).status_code == 200
    # Past the assumed bound the session is forgotten: the view holds no more.
    with time_machine.travel(time.time() + 2 * HOUR + 120, tick=False):
        view = app_state(new_app(**config)).revocations
        assert view is not None
        view.sync()
        assert not view.is_revoked(login["session_id"])


def test_a_refresh_by_0_1_during_a_rolling_upgrade_is_covered(new_app: AppFactory) -> None:
    """0.1 refreshes without recording its access token: the revocation is kept
    for one access lifetime after the session's last use too."""
    app = new_app(COCART_JWT_ACCESS_TOKEN_EXPIRES=HOUR)
    auth = AuthActions(app.test_client())
    login = auth.tokens()
    store = app_state(app).store
    now = int(time.time())
    run_sql(  # what 0.1's rotation writes, 300 s later
        app,
        "UPDATE cocart_jwt_sessions SET last_used_at = :at WHERE id = :id",
        at=now + 300,
        id=login["session_id"],
    )
    assert store.revoke_session(login["session_id"], "logout", now=now + 300)
    assert (login["session_id"], now + 300 + HOUR) in store.revoked_sessions(now + HOUR + 200)

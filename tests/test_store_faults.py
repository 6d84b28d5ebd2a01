"""Database failures: 503 ``service_unavailable`` with ``Retry-After``, nothing
half-written, and the presented token still usable afterwards."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import AuthActions, assert_error
from tests.support import AppFactory, close_app, failing, table_rows


def successor_insert(statement: str, params: Any) -> bool:
    # Only a successor names its parent; a session's first token does not.
    return "INSERT INTO cocart_jwt_refresh_tokens" in statement and "parent_id" in statement


def session_touch(statement: str, params: Any) -> bool:
    # On PostgreSQL one statement (WITH ... UPDATE ... INSERT) claims, touches and inserts.
    return "UPDATE cocart_jwt_sessions SET last_used_at" in statement


def assert_unavailable(response: Any) -> None:
    assert_error(response, 503, "service_unavailable")
    assert int(response.headers["Retry-After"]) > 0


@pytest.mark.parametrize("predicate", [successor_insert, session_touch])
def test_failure_mid_rotation_rolls_back(
    new_app: AppFactory, predicate: Callable[[str, Any], bool]
) -> None:
    app = new_app(COCART_JWT_REFRESH_REUSE_INTERVAL=0)
    auth = AuthActions(app.test_client())
    tokens = auth.tokens()
    before_tokens = table_rows(app, "refresh_tokens")
    before_sessions = table_rows(app, "sessions")

    with failing(app, predicate) as seen:
        assert_unavailable(auth.refresh(tokens["refresh_token"]))
    # The token was consumed in the failing transaction (on PostgreSQL by the
    # failing statement itself: the whole rotation is one).
    assert any("UPDATE cocart_jwt_refresh_tokens SET used_at" in s for s in seen)

    assert table_rows(app, "refresh_tokens") == before_tokens
    assert table_rows(app, "sessions") == before_sessions
    # Not consumed: the same token works (no false re-use with interval 0).
    again = auth.refresh(tokens["refresh_token"])
    assert again.status_code == 200, again.json
    assert auth.refresh(again.json["refresh_token"]).status_code == 200


def test_failure_while_revoking_a_replay(new_app: AppFactory) -> None:
    app = new_app(COCART_JWT_REFRESH_REUSE_INTERVAL=0)
    auth = AuthActions(app.test_client())
    tokens = auth.tokens()
    auth.refresh(tokens["refresh_token"])

    def revoke(statement: str, params: Any) -> bool:
        return statement.startswith("UPDATE cocart_jwt_sessions SET revoked_at")

    with failing(app, revoke):
        assert_unavailable(auth.refresh(tokens["refresh_token"]))
    # The replay is still detected once the database is back.
    assert_error(auth.refresh(tokens["refresh_token"]), 401, "refresh_token_reused")


def test_failure_during_login_leaves_no_session(new_app: AppFactory) -> None:
    app = new_app()
    auth = AuthActions(app.test_client())
    auth.tokens()  # tables created

    def token_insert(statement: str, params: Any) -> bool:
        return statement.startswith("INSERT INTO cocart_jwt_refresh_tokens")

    with failing(app, token_insert):
        assert_unavailable(auth.login())
    assert len(table_rows(app, "sessions")) == 1
    assert auth.login().status_code == 200


def test_failure_on_read(new_app: AppFactory) -> None:
    app = new_app()
    auth = AuthActions(app.test_client())
    tokens = auth.tokens()

    def read(statement: str, params: Any) -> bool:
        # On PostgreSQL a refresh reads its token by consuming it (UPDATE ... RETURNING).
        return statement.startswith("SELECT") or "RETURNING" in statement

    with failing(app, read):
        assert_unavailable(auth.refresh(tokens["refresh_token"]))
        assert_unavailable(auth.get("/auth/sessions", tokens["access_token"]))
    assert auth.refresh(tokens["refresh_token"]).status_code == 200


@pytest.mark.parametrize(
    "uri",
    [
        "postgresql+psycopg://postgres@127.0.0.1:1/test?connect_timeout=2",
        "mysql+pymysql://root@127.0.0.1:1/test?connect_timeout=2",
    ],
)
def test_database_down(make_app: AppFactory, uri: str) -> None:
    app = make_app(COCART_JWT_DATABASE_URI=uri, COCART_JWT_RATELIMIT_ENABLED=False)
    try:
        auth = AuthActions(app.test_client())
        assert_unavailable(auth.login())
        assert_unavailable(auth.refresh("rt_" + "a" * 43))
        with app.test_request_context():
            issued = app.extensions["cocart_jwt"]
            with pytest.raises(Exception, match="temporarily unavailable"):
                issued.revoke_user("alice")
    finally:
        close_app(app)

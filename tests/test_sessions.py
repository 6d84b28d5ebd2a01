"""Sessions: listing, revoking, limits, bindings, purging and the Python API."""

from __future__ import annotations

import time
from datetime import timedelta

import time_machine

from flask_cocart_jwt import CoCartJWT, SessionInfo, TokenPair, session_revoked
from tests.conftest import AuthActions, User, assert_error
from tests.support import AppFactory, table_rows


def test_list_sessions(new_app: AppFactory) -> None:
    app = new_app()
    auth = AuthActions(app.test_client())
    first = auth.tokens()
    client = app.test_client()
    second = client.post(
        "/auth/login",
        json={"username": "alice", "password": "wonderland"},
        headers={"User-Agent": "phone/1.0"},
        environ_base={"REMOTE_ADDR": "10.0.0.7"},
    ).json
    auth.tokens("bob")
    listed = auth.get("/auth/sessions", first["access_token"])
    assert listed.status_code == 200
    sessions = listed.json["sessions"]
    assert {s["id"] for s in sessions} == {first["session_id"], second["session_id"]}
    for item in sessions:
        assert set(item) == {
            "id",
            "created_at",
            "last_used_at",
            "expires_at",
            "ip",
            "user_agent",
            "current",
            "dpop_bound",
        }
        assert item["dpop_bound"] is False
        for key in ("created_at", "last_used_at", "expires_at"):
            assert type(item[key]) is int
        assert item["current"] is (item["id"] == first["session_id"])
    phone = next(s for s in sessions if s["id"] == second["session_id"])
    assert phone["ip"] == "10.0.0.7"
    assert phone["user_agent"] == "phone/1.0"
    assert phone["expires_at"] - phone["created_at"] == 90 * 24 * 3600
    assert_error(app.test_client().get("/auth/sessions"), 401, "missing_token")


def test_delete_own_session_and_not_others(new_app: AppFactory) -> None:
    app = new_app()
    auth = AuthActions(app.test_client())
    mine, other = auth.tokens(), auth.tokens()
    bobs = auth.tokens("bob")
    gone = auth.client.delete(
        f"/auth/sessions/{other['session_id']}",
        headers={"Authorization": f"Bearer {mine['access_token']}"},
    )
    assert gone.status_code == 200
    assert gone.json == {"revoked": True}
    assert_error(auth.get("/me", other["access_token"]), 401, "session_revoked")
    assert_error(auth.refresh(other["refresh_token"]), 401, "invalid_refresh_token")
    assert auth.get("/me", mine["access_token"]).status_code == 200

    for target in (bobs["session_id"], other["session_id"], "nope", "x" * 100):
        response = auth.client.delete(
            f"/auth/sessions/{target}",
            headers={"Authorization": f"Bearer {mine['access_token']}"},
        )
        assert response.status_code == 404, target
        assert response.json["error"] == "not_found"
    assert auth.get("/me", bobs["access_token"]).status_code == 200


def test_revoke_all(new_app: AppFactory) -> None:
    app = new_app()
    auth = AuthActions(app.test_client())
    alice = [auth.tokens() for _ in range(3)]
    bob = auth.tokens("bob")
    response = auth.post("/auth/revoke-all", alice[0]["access_token"])
    assert response.status_code == 200
    assert response.json == {"revoked": 3}
    for tokens in alice:
        assert_error(auth.get("/me", tokens["access_token"]), 401, "session_revoked")
        assert_error(auth.refresh(tokens["refresh_token"]), 401, "invalid_refresh_token")
    assert auth.refresh(bob["refresh_token"]).status_code == 200
    assert_error(auth.post("/auth/revoke-all", alice[0]["access_token"]), 401, "session_revoked")


def test_max_sessions_revokes_the_oldest(new_app: AppFactory) -> None:
    app = new_app(COCART_JWT_MAX_SESSIONS_PER_USER=2)
    auth = AuthActions(app.test_client())
    reasons: list[str] = []
    with session_revoked.connected_to(lambda _s, **kw: reasons.append(kw["reason"]), app):
        # All in the same second: the order of creation still decides.
        logins = [auth.tokens() for _ in range(4)]
    assert reasons == ["max_sessions", "max_sessions"]
    for old in logins[:2]:
        assert_error(auth.refresh(old["refresh_token"]), 401, "invalid_refresh_token")
        assert_error(auth.get("/me", old["access_token"]), 401, "session_revoked")
    for new in logins[2:]:
        assert auth.get("/me", new["access_token"]).status_code == 200
    listed = auth.get("/auth/sessions", logins[3]["access_token"]).json["sessions"]
    assert {s["id"] for s in listed} == {logins[2]["session_id"], logins[3]["session_id"]}
    # Other users are counted apart.
    assert auth.get("/me", auth.tokens("bob")["access_token"]).status_code == 200


def test_bind_ip(new_app: AppFactory) -> None:
    app = new_app(COCART_JWT_BIND_IP=True)
    client = app.test_client()
    home = {"REMOTE_ADDR": "192.0.2.1"}
    tokens = client.post(
        "/auth/login", json={"username": "alice", "password": "wonderland"}, environ_base=home
    ).json
    body = {"refresh_token": tokens["refresh_token"]}
    away = client.post(
        "/auth/refresh-token", json=body, environ_base={"REMOTE_ADDR": "198.51.100.9"}
    )
    assert_error(away, 401, "invalid_refresh_token")
    ok = client.post("/auth/refresh-token", json=body, environ_base=home)
    assert ok.status_code == 200
    # A retry of the parent from elsewhere does not pick up the successor.
    retry = client.post(
        "/auth/refresh-token", json=body, environ_base={"REMOTE_ADDR": "198.51.100.9"}
    )
    assert_error(retry, 401, "invalid_refresh_token")
    assert client.post("/auth/refresh-token", json=body, environ_base=home).status_code == 200


def test_bind_ip_longer_than_the_column(new_app: AppFactory) -> None:
    # An IPv6 address with a zone id can pass 45 characters, the column's size:
    # it is stored cut, and compared cut, so the same client can refresh.
    app = new_app(COCART_JWT_BIND_IP=True)
    client = app.test_client()
    home = {"REMOTE_ADDR": "fe80:0000:0000:0000:0204:61ff:fe9d:f156%enp0s31f6"}
    assert len(home["REMOTE_ADDR"]) > 45
    tokens = client.post(
        "/auth/login", json={"username": "alice", "password": "wonderland"}, environ_base=home
    ).json
    body = {"refresh_token": tokens["refresh_token"]}
    assert client.post("/auth/refresh-token", json=body, environ_base=home).status_code == 200
    listed = client.get(
        "/auth/sessions", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    ).json["sessions"]
    assert listed[0]["ip"] == home["REMOTE_ADDR"][:45]
    elsewhere = {"REMOTE_ADDR": "fe80:0000:0000:0000:0204:61ff:fe9d:f157%enp0s31f6"}
    assert_error(
        client.post("/auth/refresh-token", json=body, environ_base=elsewhere),
        401,
        "invalid_refresh_token",
    )


def test_bind_user_agent(new_app: AppFactory) -> None:
    app = new_app(COCART_JWT_BIND_USER_AGENT=True)
    client = app.test_client()
    tokens = client.post(
        "/auth/login",
        json={"username": "alice", "password": "wonderland"},
        headers={"User-Agent": "app/1"},
    ).json
    body = {"refresh_token": tokens["refresh_token"]}
    other = client.post("/auth/refresh-token", json=body, headers={"User-Agent": "curl/8"})
    assert_error(other, 401, "invalid_refresh_token")
    same = client.post("/auth/refresh-token", json=body, headers={"User-Agent": "app/1"})
    assert same.status_code == 200
    # Without binding, another IP or user agent is fine.
    free = AuthActions(new_app().test_client())
    pair = free.tokens()
    moved = free.client.post(
        "/auth/refresh-token",
        json={"refresh_token": pair["refresh_token"]},
        headers={"User-Agent": "curl/8"},
        environ_base={"REMOTE_ADDR": "198.51.100.9"},
    )
    assert moved.status_code == 200


def test_purge_expired(new_app: AppFactory) -> None:
    app = new_app(
        COCART_JWT_SESSION_MAX_AGE=timedelta(hours=1),
        COCART_JWT_REFRESH_TOKEN_EXPIRES=timedelta(minutes=10),
    )
    auth = AuthActions(app.test_client())
    ext: CoCartJWT = app.extensions["cocart_jwt"]
    with time_machine.travel(time.time(), tick=False) as clock:
        old = auth.tokens()
        auth.refresh(old["refresh_token"])
        clock.shift(30 * 60)
        young = auth.tokens()
        young_next = auth.refresh(young["refresh_token"]).json
        revoked = auth.tokens()
        auth.client.post("/auth/revoke", json={"refresh_token": revoked["refresh_token"]})
        clock.shift(31 * 60)  # old is past its absolute expiry; young's first token is idle
        with app.app_context():
            assert ext.purge_expired(batch_size=1) == 1
            assert ext.purge_expired() == 0
    sessions = {row["id"] for row in table_rows(app, "sessions")}
    assert sessions == {young["session_id"], revoked["session_id"]}
    tokens = table_rows(app, "refresh_tokens")
    assert {row["session_id"] for row in tokens} == sessions
    # The tombstone of the live session is kept: re-use is still detected.
    assert len([row for row in tokens if row["session_id"] == young["session_id"]]) == 2
    assert young_next["refresh_token"]


def test_python_api(new_app: AppFactory) -> None:
    app = new_app()
    ext: CoCartJWT = app.extensions["cocart_jwt"]
    auth = AuthActions(app.test_client())
    with app.test_request_context(
        headers={"User-Agent": "script/1"}, environ_base={"REMOTE_ADDR": "203.0.113.5"}
    ):
        pairs = [ext.issue_tokens(User("carol")) for _ in range(3)]
        assert all(isinstance(pair, TokenPair) for pair in pairs)
        assert "rt_" not in repr(pairs[0])
        listed = ext.list_sessions("carol")
        assert all(isinstance(info, SessionInfo) for info in listed)
        assert {info.id for info in listed} == {pair.session_id for pair in pairs}
        assert listed[0].ip == "203.0.113.5"
        assert listed[0].user_agent == "script/1"
        assert ext.list_sessions("nobody") == []

        assert ext.revoke_session(pairs[0].session_id, "admin") is True
        assert ext.revoke_session(pairs[0].session_id, "admin") is False
        assert ext.revoke_session("unknown", "admin") is False
        assert ext.revoke_refresh_token(pairs[1].refresh_token) is True
        assert ext.revoke_refresh_token(pairs[1].refresh_token) is False
        assert ext.revoke_refresh_token("rt_" + "z" * 43) is False
        assert ext.revoke_refresh_token("not a token") is False
        assert [info.id for info in ext.list_sessions("carol")] == [pairs[2].session_id]
        assert ext.revoke_user("carol", "admin") == 1
        assert ext.revoke_user("carol", "admin") == 0
        assert ext.list_sessions("carol") == []

    for pair in pairs:
        assert_error(auth.get("/me", pair.access_token), 401, "session_revoked")
        assert_error(auth.refresh(pair.refresh_token), 401, "invalid_refresh_token")
    reasons = {row["id"]: row["revoked_reason"] for row in table_rows(app, "sessions")}
    assert reasons == {
        pairs[0].session_id: "admin",
        pairs[1].session_id: "logout",
        pairs[2].session_id: "admin",
    }
    with app.test_request_context():
        fresh = ext.issue_tokens(User("dave"))
    assert auth.refresh(fresh.refresh_token).status_code == 200

"""End-to-end: log in, call a protected view, refresh, log out."""

from __future__ import annotations

from tests.conftest import AuthActions, assert_error


def test_login_protected_refresh_logout(auth: AuthActions) -> None:
    tokens = auth.tokens()
    assert tokens["token_type"] == "Bearer"
    me = auth.get("/me", tokens["access_token"])
    assert me.status_code == 200
    assert me.json["identity"] == "alice"
    new = auth.refresh(tokens["refresh_token"])
    assert new.status_code == 200
    assert new.json["session_id"] == tokens["session_id"]
    out = auth.client.post("/auth/revoke", json={"refresh_token": new.json["refresh_token"]})
    assert out.json == {"revoked": True}
    assert_error(auth.get("/me", new.json["access_token"]), 401, "session_revoked")

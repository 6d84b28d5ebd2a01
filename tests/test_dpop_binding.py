"""DPoP binding (SPEC 11): sessions and tokens bound to the key of a login's proof.

On every database backend: a login with a proof binds its session; a refresh
of a bound session needs a proof by the same key and rotates nothing without
one; a bound access token is accepted only as ``Authorization: DPoP`` with a
matching proof, never as Bearer; ``/sessions`` says ``dpop_bound``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask, jsonify

from flask_cocart_jwt import CoCartJWT, InvalidToken, decode_token
from tests.conftest import NO_LIMITS, AuthActions, assert_error
from tests.dpop_support import DPoPActions, ProofKey, assert_dpop_error
from tests.support import AppFactory, live_tokens, table_rows

OPTIONAL = {"COCART_JWT_DPOP": "optional"}


def session_row(app: Flask, session_id: str) -> dict[str, Any]:
    (row,) = [r for r in table_rows(app, "sessions") if r["id"] == session_id]
    return row


def claims_of(app: Flask, token: str) -> dict[str, Any]:
    """The verified claims of an access token, bound or not."""
    with app.app_context():
        return app.extensions["cocart_jwt"].service.verify(token)  # type: ignore[no-any-return]


# -- login binds ------------------------------------------------------------------


def test_login_with_a_proof_binds_the_session(new_app: AppFactory) -> None:
    app = new_app(**OPTIONAL)
    dpop = DPoPActions(app.test_client())
    pair = dpop.tokens()
    assert pair["token_type"] == "DPoP"
    assert claims_of(app, pair["access_token"])["cnf"] == {"jkt": dpop.key.jkt}
    assert session_row(app, pair["session_id"])["dpop_jkt"] == dpop.key.jkt
    me = dpop.get("/me", pair["access_token"])
    assert me.status_code == 200, me.json
    sessions = dpop.call("GET", "/auth/sessions", pair["access_token"])
    assert sessions.status_code == 200, sessions.json
    (listed,) = sessions.json["sessions"]
    assert listed["dpop_bound"] is True
    assert listed["current"] is True


def test_login_without_a_proof_stays_bearer_in_optional_mode(new_app: AppFactory) -> None:
    app = new_app(**OPTIONAL)
    auth = AuthActions(app.test_client())
    pair = auth.tokens()
    assert pair["token_type"] == "Bearer"
    assert "cnf" not in claims_of(app, pair["access_token"])
    assert session_row(app, pair["session_id"])["dpop_jkt"] is None
    assert auth.get("/me", pair["access_token"]).status_code == 200
    listed = auth.get("/auth/sessions", pair["access_token"]).json["sessions"]
    assert [s["dpop_bound"] for s in listed] == [False]
    refreshed = auth.refresh(pair["refresh_token"])
    assert refreshed.status_code == 200
    assert refreshed.json["token_type"] == "Bearer"


def test_a_refresh_with_a_proof_binds_an_unbound_session(new_app: AppFactory) -> None:
    app = new_app(**OPTIONAL)
    pair = AuthActions(app.test_client()).tokens()
    dpop = DPoPActions(app.test_client())
    refreshed = dpop.refresh(pair["refresh_token"])
    assert refreshed.status_code == 200, refreshed.json
    assert refreshed.json["token_type"] == "DPoP"
    assert session_row(app, pair["session_id"])["dpop_jkt"] == dpop.key.jkt
    # From now on the session is the key's.
    assert_dpop_error(dpop.refresh(refreshed.json["refresh_token"], proof=None))


def test_an_invalid_proof_at_login_is_refused_not_ignored(new_app: AppFactory) -> None:
    app = new_app(**OPTIONAL)
    dpop = DPoPActions(app.test_client())
    response = dpop.login(proof=dpop.key.proof("POST", "/auth/refresh-token"))
    assert_dpop_error(response)
    assert table_rows(app, "sessions") == []


# -- refresh of a bound session -------------------------------------------------------


def test_bound_refresh_without_a_proof_is_refused_and_not_rotated(new_app: AppFactory) -> None:
    app = new_app(**OPTIONAL)
    dpop = DPoPActions(app.test_client())
    pair = dpop.tokens()
    before = live_tokens(app, pair["session_id"])
    assert_dpop_error(dpop.refresh(pair["refresh_token"], proof=None))
    assert live_tokens(app, pair["session_id"]) == before
    assert session_row(app, pair["session_id"])["revoked_at"] is None
    # The owner's next refresh, with its key, rotates as usual.
    refreshed = dpop.refresh(pair["refresh_token"])
    assert refreshed.status_code == 200, refreshed.json
    assert refreshed.json["token_type"] == "DPoP"
    assert claims_of(app, refreshed.json["access_token"])["cnf"] == {"jkt": dpop.key.jkt}


def test_bound_refresh_with_another_key_is_refused_and_not_rotated(new_app: AppFactory) -> None:
    app = new_app(**OPTIONAL)
    owner = DPoPActions(app.test_client())
    pair = owner.tokens()
    before = live_tokens(app, pair["session_id"])
    thief = DPoPActions(app.test_client(), ProofKey("EdDSA"))
    assert_dpop_error(thief.refresh(pair["refresh_token"]))
    assert live_tokens(app, pair["session_id"]) == before
    assert owner.refresh(pair["refresh_token"]).status_code == 200


def test_a_replayed_bound_refresh_token_needs_the_key_to_revoke(new_app: AppFactory) -> None:
    """Reuse detection still works for the key's holder; a thief without the
    key cannot even get the session revoked by replaying a consumed token."""
    app = new_app(**OPTIONAL, COCART_JWT_REFRESH_REUSE_INTERVAL=0)
    owner = DPoPActions(app.test_client())
    pair = owner.tokens()
    assert owner.refresh(pair["refresh_token"]).status_code == 200
    thief = DPoPActions(app.test_client(), ProofKey())
    assert_dpop_error(thief.refresh(pair["refresh_token"]))
    assert_dpop_error(thief.refresh(pair["refresh_token"], proof=None))
    assert session_row(app, pair["session_id"])["revoked_at"] is None
    replay = owner.refresh(pair["refresh_token"])
    assert_error(replay, 401, "refresh_token_reused")
    assert session_row(app, pair["session_id"])["revoked_at"] is not None


def test_a_retry_inside_the_reuse_interval_gets_the_same_bound_successor(
    new_app: AppFactory,
) -> None:
    app = new_app(**OPTIONAL)
    dpop = DPoPActions(app.test_client())
    pair = dpop.tokens()
    first = dpop.refresh(pair["refresh_token"])
    retry = dpop.refresh(pair["refresh_token"])
    assert retry.status_code == 200, retry.json
    assert retry.json["refresh_token"] == first.json["refresh_token"]
    assert retry.json["token_type"] == "DPoP"
    assert_dpop_error(dpop.refresh(pair["refresh_token"], proof=None))


# -- bound access tokens ----------------------------------------------------------------


@pytest.mark.parametrize("path", ["/me", "/whoami"])
def test_a_bound_access_token_as_bearer_is_refused(new_app: AppFactory, path: str) -> None:
    app = new_app(**OPTIONAL)
    dpop = DPoPActions(app.test_client())
    token = dpop.tokens()["access_token"]
    auth = AuthActions(app.test_client())
    assert_error(auth.get(path, token), 401, "invalid_token")
    # With a valid proof too: the scheme must say DPoP (no downgrade).
    proof = dpop.key.proof("GET", path, access_token=token)
    response = app.test_client().get(
        path, headers={"Authorization": f"Bearer {token}", "DPoP": proof}
    )
    assert_error(response, 401, "invalid_token")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/auth/validate-token"),
        ("GET", "/auth/sessions"),
        ("POST", "/auth/revoke-all"),
        ("POST", "/auth/revoke"),
    ],
)
def test_the_bearer_routes_take_a_bound_token_with_its_proof_only(
    new_app: AppFactory, method: str, path: str
) -> None:
    app = new_app(**OPTIONAL)
    dpop = DPoPActions(app.test_client())
    pair = dpop.tokens()
    token = pair["access_token"]
    bearer = app.test_client().open(
        path, method=method, headers={"Authorization": f"Bearer {token}"}
    )
    assert_error(bearer, 401, "invalid_token")
    assert_dpop_error(dpop.call(method, path, token, proof=None))
    assert session_row(app, pair["session_id"])["revoked_at"] is None
    assert dpop.call(method, path, token).status_code == 200


def test_an_unbound_token_sent_as_dpop_is_refused(new_app: AppFactory) -> None:
    app = new_app(**OPTIONAL)
    token = AuthActions(app.test_client()).tokens()["access_token"]
    dpop = DPoPActions(app.test_client())
    assert_error(dpop.get("/me", token), 401, "invalid_token")


def test_the_dpop_scheme_is_not_read_when_dpop_is_off(new_app: AppFactory) -> None:
    app = new_app()
    token = AuthActions(app.test_client()).tokens()["access_token"]
    response = DPoPActions(app.test_client()).get("/me", token)
    assert_error(response, 401, "missing_token")


def test_additional_claims_cannot_forge_a_binding(new_app: AppFactory) -> None:
    app = new_app(**OPTIONAL)
    ext: CoCartJWT = app.extensions["cocart_jwt"]

    @ext.additional_claims_loader
    def extra(_user: Any) -> dict[str, Any]:
        return {"cnf": {"jkt": "attacker"}, "role": "admin"}

    auth = AuthActions(app.test_client())
    pair = auth.tokens()
    claims = claims_of(app, pair["access_token"])
    assert "cnf" not in claims
    assert claims["role"] == "admin"
    dpop = DPoPActions(app.test_client())
    bound = dpop.tokens()
    assert claims_of(app, bound["access_token"])["cnf"] == {"jkt": dpop.key.jkt}


def test_decode_token_refuses_a_bound_token(new_app: AppFactory) -> None:
    app = new_app(**OPTIONAL)
    token = DPoPActions(app.test_client()).tokens()["access_token"]
    with app.app_context(), pytest.raises(InvalidToken):
        decode_token(token)


# -- modes --------------------------------------------------------------------------------


def test_required_mode_refuses_a_login_without_a_proof(new_app: AppFactory) -> None:
    app = new_app(COCART_JWT_DPOP="required")
    response = AuthActions(app.test_client()).login()
    assert_dpop_error(response)
    assert table_rows(app, "sessions") == []
    assert DPoPActions(app.test_client()).tokens()["token_type"] == "DPoP"


def test_required_mode_refuses_unbound_tokens(new_app: AppFactory) -> None:
    app = new_app(**OPTIONAL)
    pair = AuthActions(app.test_client()).tokens()  # unbound, issued in optional mode
    strict = new_app(
        COCART_JWT_DPOP="required",
        COCART_JWT_DATABASE_URI=app.config["COCART_JWT_DATABASE_URI"],
    )
    assert_error(
        AuthActions(strict.test_client()).get("/me", pair["access_token"]), 401, "invalid_token"
    )
    assert_dpop_error(AuthActions(strict.test_client()).refresh(pair["refresh_token"]))
    refreshed = DPoPActions(strict.test_client()).refresh(pair["refresh_token"])
    assert refreshed.status_code == 200, refreshed.json
    assert refreshed.json["token_type"] == "DPoP"


def test_switching_dpop_off_does_not_unbind(new_app: AppFactory) -> None:
    app = new_app(**OPTIONAL)
    pair = DPoPActions(app.test_client()).tokens()
    off = new_app(COCART_JWT_DATABASE_URI=app.config["COCART_JWT_DATABASE_URI"])
    auth = AuthActions(off.test_client())
    assert_error(auth.get("/me", pair["access_token"]), 401, "invalid_token")
    assert_error(auth.refresh(pair["refresh_token"]), 401, "invalid_refresh_token")
    assert live_tokens(off, pair["session_id"])  # nothing consumed


def test_issue_tokens_binds_to_the_proof_of_the_request(make_app: Callable[..., Flask]) -> None:
    app = make_app(**OPTIONAL, **NO_LIMITS)
    ext: CoCartJWT = app.extensions["cocart_jwt"]

    @app.post("/signup")
    def signup() -> Any:
        return ext.issue_tokens("carol").to_response(201)

    key = ProofKey()
    client = app.test_client()
    response = client.post("/signup", headers={"DPoP": key.proof("POST", "/signup")})
    assert response.status_code == 201, response.json
    assert response.json["token_type"] == "DPoP"
    assert claims_of(app, response.json["access_token"])["cnf"] == {"jkt": key.jkt}
    assert client.post("/signup").json["token_type"] == "Bearer"
    with app.app_context():
        assert ext.issue_tokens("dave").token_type == "Bearer"  # outside a request


def test_the_proof_of_another_route_is_refused(make_app: Callable[..., Flask]) -> None:
    app = make_app(**OPTIONAL, **NO_LIMITS)

    @app.get("/other")
    def other() -> Any:
        return jsonify(ok=True)

    dpop = DPoPActions(app.test_client())
    token = dpop.tokens()["access_token"]
    proof = dpop.key.proof("GET", "/other", access_token=token)
    assert_dpop_error(dpop.get("/me", token, proof=proof))


@pytest.mark.parametrize("field", ["refresh_token", "token", "access_token"])
def test_revoking_a_bound_session_by_a_token_in_the_body_needs_the_key(
    new_app: AppFactory, field: str
) -> None:
    app = new_app(**OPTIONAL)
    owner = DPoPActions(app.test_client())
    pair = owner.tokens()
    body = (
        {"token": pair["access_token"]}
        if field == "access_token"
        else {field: pair["refresh_token"]}
    )
    client = app.test_client()
    assert_dpop_error(client.post("/auth/revoke", json=body))
    thief = ProofKey()
    response = client.post(
        "/auth/revoke", json=body, headers={"DPoP": thief.proof("POST", "/auth/revoke")}
    )
    assert_dpop_error(response)
    assert session_row(app, pair["session_id"])["revoked_at"] is None
    response = client.post(
        "/auth/revoke", json=body, headers={"DPoP": owner.key.proof("POST", "/auth/revoke")}
    )
    assert response.status_code == 200, response.json
    assert session_row(app, pair["session_id"])["revoked_at"] is not None


def test_revoking_an_unbound_session_needs_no_proof(new_app: AppFactory) -> None:
    app = new_app(**OPTIONAL)
    pair = AuthActions(app.test_client()).tokens()
    response = app.test_client().post("/auth/revoke", json={"token": pair["refresh_token"]})
    assert response.status_code == 200
    assert session_row(app, pair["session_id"])["revoked_at"] is not None

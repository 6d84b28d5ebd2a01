"""The memo of verified access tokens: a token's next requests check its time only.

Whatever the memo holds, a request still gets every answer it would get
without it: an expired token ``token_expired``, a revoked session
``session_revoked``, a forged token ``invalid_token``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, jsonify

from flask_cocart_jwt import jwt_required, verify_jwt_in_request
from flask_cocart_jwt.config import Settings, load_settings
from flask_cocart_jwt.exceptions import ConfigurationError, InvalidToken, TokenExpired
from flask_cocart_jwt.service import service_of
from flask_cocart_jwt.tokens import encode_access_token
from flask_cocart_jwt.verified import VerifiedTokens
from tests.conftest import NO_LIMITS, SECRET, AuthActions, assert_error

NOW = 1_900_000_000


def settings_for(tmp_path: Path, **config: Any) -> Settings:
    return load_settings({"COCART_JWT_SECRET_KEY": SECRET, **config}, str(tmp_path))


def issue(settings: Settings, **kwargs: Any) -> str:
    options: dict[str, Any] = {"identity": "alice", "session_id": "s1", "fresh": True, "now": NOW}
    token, _ = encode_access_token(settings, **{**options, **kwargs})
    return token


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return settings_for(tmp_path, COCART_JWT_LEEWAY=10)


def test_a_verified_token_is_remembered_until_its_exp_and_leeway(settings: Settings) -> None:
    memo = VerifiedTokens(settings)
    token = issue(settings)
    claims = memo.decode(token, NOW)
    assert memo.get(token, NOW + 100) == claims
    assert memo.get(token, NOW + 900 + 10 - 0.001) == claims
    assert memo.get(token, NOW + 900 + 10) is None  # expired: decoded in full, which says so
    assert len(memo) == 0
    with pytest.raises(TokenExpired):
        memo.decode(token, NOW + 900 + 10)


def test_a_clock_that_went_back_gets_the_full_check(settings: Settings) -> None:
    memo = VerifiedTokens(settings)
    token = issue(settings)
    memo.decode(token, NOW)
    assert memo.get(token, NOW - 10 - 1) is None
    with pytest.raises(InvalidToken):
        memo.decode(token, NOW - 10 - 1)


def test_each_request_gets_its_own_copy(settings: Settings) -> None:
    memo = VerifiedTokens(settings)
    token = issue(settings)
    first = memo.decode(token, NOW)
    first["sub"] = "mallory"
    second = memo.decode(token, NOW)
    assert second["sub"] == "alice"
    second["sub"] = "mallory"
    assert memo.decode(token, NOW)["sub"] == "alice"


def test_claims_with_lists_or_objects_are_not_remembered(settings: Settings) -> None:
    memo = VerifiedTokens(settings)
    for extra in ({"roles": ["admin"]}, {"profile": {"plan": "pro"}}):
        token = issue(settings, additional_claims=extra)
        assert memo.decode(token, NOW)
        assert memo.get(token, NOW) is None
    bound = issue(settings, jkt="0" * 43)  # cnf: an object
    memo.decode(bound, NOW)
    assert len(memo) == 0


def test_flat_additional_claims_are_remembered(settings: Settings) -> None:
    memo = VerifiedTokens(settings)
    token = issue(settings, additional_claims={"role": "admin", "level": 3, "beta": None})
    claims = memo.decode(token, NOW)
    assert memo.get(token, NOW) == claims


def test_a_refused_token_is_not_remembered(settings: Settings, tmp_path: Path) -> None:
    memo = VerifiedTokens(settings)
    header, _, signature = issue(settings).split(".")
    payload = issue(settings, identity="mallory").split(".")[1]
    forged = f"{header}.{payload}.{signature}"
    other = issue(settings_for(tmp_path, COCART_JWT_SECRET_KEY=SECRET[::-1]))
    for token in (forged, other, issue(settings, now=NOW - 5000), issue(settings, now=NOW + 60)):
        with pytest.raises((InvalidToken, TokenExpired)):
            memo.decode(token, NOW)
    assert len(memo) == 0


def test_the_memo_starts_over_when_full(settings: Settings) -> None:
    memo = VerifiedTokens(replace(settings, verified_token_cache_size=3))
    tokens = [issue(settings) for _ in range(4)]
    for token in tokens[:3]:
        memo.decode(token, NOW)
    assert len(memo) == 3
    memo.decode(tokens[3], NOW)
    assert len(memo) == 1
    assert memo.get(tokens[3], NOW) is not None


def test_size_zero_remembers_nothing(settings: Settings) -> None:
    memo = VerifiedTokens(replace(settings, verified_token_cache_size=0))
    token = issue(settings)
    assert memo.decode(token, NOW)["sub"] == "alice"
    assert len(memo) == 0


@pytest.mark.parametrize("value", [-1, "10", 1.5, True, None])
def test_invalid_sizes_are_refused(tmp_path: Path, value: Any) -> None:
    with pytest.raises(ConfigurationError, match="COCART_JWT_VERIFIED_TOKEN_CACHE_SIZE"):
        settings_for(tmp_path, COCART_JWT_VERIFIED_TOKEN_CACHE_SIZE=value)


# -- through requests ----------------------------------------------------------


def test_a_remembered_token_of_a_revoked_session_is_refused(
    make_app: Callable[..., Flask],
) -> None:
    app = make_app(**NO_LIMITS)
    auth = AuthActions(app.test_client())
    tokens = auth.tokens()
    assert auth.get("/me", tokens["access_token"]).status_code == 200
    assert auth.get("/me", tokens["access_token"]).status_code == 200  # from the memo
    with app.app_context():
        assert len(service_of(app).verified) == 1
    logout = auth.post("/auth/revoke", tokens["access_token"])
    assert logout.status_code == 200, logout.json
    assert_error(auth.get("/me", tokens["access_token"]), 401, "session_revoked")


def test_a_remembered_token_expires_on_time(
    make_app: Callable[..., Flask], monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app(**NO_LIMITS)
    auth = AuthActions(app.test_client())
    token = auth.tokens()["access_token"]
    assert auth.get("/me", token).status_code == 200
    import flask_cocart_jwt.service as service_module

    later = service_module.time.time() + 900 + 1
    monkeypatch.setattr(service_module.time, "time", lambda: later)
    assert_error(auth.get("/me", token), 401, "token_expired")


def test_a_view_that_changes_its_claims_changes_no_other_request(
    make_app: Callable[..., Flask],
) -> None:
    app = make_app(**NO_LIMITS)

    @app.get("/meddle")
    @jwt_required
    def meddle() -> Any:
        claims = verify_jwt_in_request()
        assert claims is not None
        claims["sub"] = "mallory"
        claims["fresh"] = True
        return jsonify(ok=True)

    auth = AuthActions(app.test_client())
    refreshed = auth.refresh(auth.tokens()["refresh_token"]).json["access_token"]  # fresh: false
    for _ in range(2):
        assert auth.get("/meddle", refreshed).status_code == 200
        me = auth.get("/me", refreshed).json
        assert (me["identity"], me["claims"]["fresh"]) == ("alice", False)
    assert_error(auth.post("/fresh", refreshed), 401, "fresh_token_required")

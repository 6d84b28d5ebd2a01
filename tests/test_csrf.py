"""CSRF defence of cookie mode (SPEC 10): every failure mode is a 403 that changes nothing.

Layer 1, the origin check, runs on every cookie request, login included;
layer 2, the session-bound double-submit token, on every cookie request but
login. A refused request rotates, revokes and sets nothing.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask, jsonify

from flask_cocart_jwt import AuthError, CoCartJWT, CsrfFailed, jwt_required
from flask_cocart_jwt import csrf as csrf_module
from tests.conftest import NO_LIMITS, AuthActions, assert_error
from tests.support import (
    CSRF_COOKIE,
    ORIGIN,
    REFRESH_COOKIE,
    BrowserActions,
    live_tokens,
    set_cookies,
    table_rows,
)

MakeApp = Callable[..., Flask]
COOKIE_MODE = {"COCART_JWT_COOKIE_MODE": True, **NO_LIMITS}


@pytest.fixture
def reasons(make_app: MakeApp) -> tuple[Flask, list[str]]:
    """An app in cookie mode (with the access cookie) whose error loader records
    ``CsrfFailed.reason``."""
    ext = CoCartJWT()
    seen: list[str] = []

    @ext.error_response_loader
    def render(error: AuthError) -> Any:
        if isinstance(error, CsrfFailed):
            seen.append(error.reason)
        response = jsonify(error.to_dict())
        response.status_code = error.status_code
        response.headers.update(error.headers)
        return response

    app = make_app(extension=ext, **COOKIE_MODE, COCART_JWT_ACCESS_COOKIE=True)
    return app, seen


def _forge(token: str) -> str:
    session_id, nonce, mac = token.split(".")
    return f"{session_id}.{nonce}.{mac[:-2]}{'AA' if mac[-2:] != 'AA' else 'BB'}"


def _other_session(app: Flask) -> str:
    """A valid CSRF token of another session (bob's, in another browser)."""
    other = BrowserActions(app.test_client())
    other.login("bob")
    token = other.csrf()
    assert token is not None
    return token


#: name -> (how to spoil the request, CsrfFailed.reason)
FAILURES: dict[str, tuple[Callable[[BrowserActions, Flask], dict[str, str]], str]] = {
    "foreign-origin": (lambda b, a: b.headers(Origin="https://evil.example"), "origin"),
    "null-origin": (lambda b, a: b.headers(Origin="null"), "origin"),
    "empty-origin": (lambda b, a: b.headers(Origin=""), "origin"),
    "other-port": (lambda b, a: b.headers(Origin="http://localhost:8080"), "origin"),
    "other-scheme": (lambda b, a: b.headers(Origin="https://localhost"), "origin"),
    "suffix-origin": (lambda b, a: b.headers(Origin="http://localhost.evil.example"), "origin"),
    "missing-header": (lambda b, a: {"Origin": ORIGIN}, "token"),
    "empty-header": (lambda b, a: b.headers(**{"X-CSRF-Token": ""}), "token"),
    "header-not-cookie": (
        lambda b, a: b.headers(**{"X-CSRF-Token": _forge(str(b.csrf()))}),
        "token",
    ),
    "missing-cookie": (lambda b, a: _drop_csrf_cookie(b), "token"),
    "forged-token": (lambda b, a: _plant(b, _forge(str(b.csrf()))), "token"),
    "malformed-token": (lambda b, a: _plant(b, "x.y"), "token"),
    "oversized-token": (lambda b, a: _plant(b, "a.b." + "c" * 300), "token"),
    "non-ascii-token": (lambda b, a: b.headers(**{"X-CSRF-Token": "é"}), "token"),
    "other-session": (lambda b, a: _plant(b, _other_session(a)), "session"),
}


def _drop_csrf_cookie(browser: BrowserActions) -> dict[str, str]:
    headers = browser.headers()
    browser.client.delete_cookie(CSRF_COOKIE)
    return headers


def _plant(browser: BrowserActions, token: str) -> dict[str, str]:
    """The same value in the CSRF cookie and header: a double submit of ``token``."""
    browser.client.set_cookie(CSRF_COOKIE, token)
    return browser.headers(**{"X-CSRF-Token": token})


@pytest.mark.parametrize("route", ["refresh-token", "revoke"])
@pytest.mark.parametrize("failure", list(FAILURES))
def test_refused_and_nothing_changes(
    reasons: tuple[Flask, list[str]], route: str, failure: str
) -> None:
    app, seen = reasons
    browser = BrowserActions(app.test_client())
    login = browser.login()
    refresh_cookie = browser.refresh_cookie()
    spoil, reason = FAILURES[failure]
    headers = spoil(browser, app)
    response = browser.client.post(f"/auth/{route}", headers=headers)
    assert_error(response, 403, "csrf_failed")
    assert response.json["message"] == CsrfFailed.default_message  # says no more than the code
    assert seen == [reason]
    assert set_cookies(response) == {}
    assert browser.refresh_cookie() == refresh_cookie
    sessions = {row["id"]: row for row in table_rows(app, "sessions")}
    assert sessions[login.json["session_id"]]["revoked_at"] is None
    (live,) = live_tokens(app, login.json["session_id"])
    assert live["parent_id"] is None  # the login's token, not rotated


@pytest.mark.parametrize("failure", [f for f in FAILURES if f != "missing-cookie"])
def test_access_cookie_unsafe_methods_are_refused(
    reasons: tuple[Flask, list[str]], failure: str
) -> None:
    app, seen = reasons
    browser = BrowserActions(app.test_client())
    browser.login()
    spoil, reason = FAILURES[failure]
    response = browser.client.post("/fresh", headers=spoil(browser, app))
    assert_error(response, 403, "csrf_failed")
    assert seen == [reason]
    for route in ("/auth/revoke-all", "/auth/validate-token"):
        assert_error(browser.client.post(route, headers={"Origin": ORIGIN}), 403, "csrf_failed")
    assert table_rows(app, "sessions")[0]["revoked_at"] is None


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_access_cookie_unsafe_methods_need_an_origin(make_app: MakeApp, method: str) -> None:
    app = make_app(**COOKIE_MODE, COCART_JWT_ACCESS_COOKIE=True)

    @app.route("/orders", methods=["GET", method])
    @jwt_required
    def orders() -> Any:
        return jsonify(ok=True)

    browser = BrowserActions(app.test_client())
    browser.login()
    csrf = {"X-CSRF-Token": str(browser.csrf())}
    assert_error(browser.client.open("/orders", method=method, headers=csrf), 403, "csrf_failed")
    assert browser.client.open("/orders", method=method, headers=browser.headers()).json == {
        "ok": True
    }
    assert browser.client.get("/orders").json == {"ok": True}  # safe: no check


@pytest.mark.parametrize(
    "origin", ["https://evil.example", "null", "", "http://localhost:5000", "https://localhost"]
)
def test_login_csrf(make_app: MakeApp, origin: str) -> None:
    """Login checks the origin: a foreign page cannot log the browser into its account."""
    checked: list[str] = []
    ext = CoCartJWT()
    app = make_app(extension=ext, **COOKIE_MODE)
    ext.credentials_checker(lambda username, password: checked.append(username))
    response = BrowserActions(app.test_client(), origin=origin).login()
    assert_error(response, 403, "csrf_failed")
    assert set_cookies(response) == {}
    assert checked == []  # refused before the credentials were looked at
    assert table_rows(app, "sessions") == []


def test_trusted_origins(make_app: MakeApp) -> None:
    app = make_app(
        **COOKIE_MODE, COCART_JWT_CSRF_TRUSTED_ORIGINS=("https://shop.example", "http://[::1]:3000")
    )
    for origin in ("https://shop.example", "http://[::1]:3000", ORIGIN):
        browser = BrowserActions(app.test_client(), origin=origin)
        assert browser.login().status_code == 200
        assert browser.refresh().status_code == 200
        assert browser.revoke().status_code == 200
    for origin in ("https://shop.example:8443", "http://shop.example", "https://www.shop.example"):
        assert_error(BrowserActions(app.test_client(), origin=origin).login(), 403, "csrf_failed")


@pytest.mark.parametrize(
    ("base_url", "origin"),
    [
        ("https://api.example", "https://api.example"),
        ("https://api.example:443", "https://api.example"),
        ("http://api.example:8080", "http://api.example:8080"),
        ("http://API.example", "http://api.example"),
    ],
)
def test_own_origin_is_the_request_scheme_and_host(
    make_app: MakeApp, base_url: str, origin: str
) -> None:
    app = make_app(**COOKIE_MODE)
    client = app.test_client()
    response = client.post(
        "/auth/login",
        json={"username": "alice", "password": "wonderland"},
        headers={"Origin": origin},
        base_url=base_url,
    )
    assert response.status_code == 200, response.json
    wrong = "http://api.example" if origin.startswith("https") else "https://api.example"
    refused = client.post("/auth/login", json={}, headers={"Origin": wrong}, base_url=base_url)
    assert_error(refused, 403, "csrf_failed")


def test_the_token_of_another_session_is_refused_on_every_backend(
    new_app: Callable[..., Flask],
) -> None:
    """The binding is checked on the token's row, before the rotating statement."""
    app = new_app(**COOKIE_MODE)
    browser = BrowserActions(app.test_client())
    login = browser.login()
    other = _other_session(app)
    for route in ("refresh-token", "revoke"):
        response = browser.client.post(
            f"/auth/{route}", headers=_plant(browser, other) | {"Origin": ORIGIN}
        )
        assert_error(response, 403, "csrf_failed")
    (live,) = live_tokens(app, login.json["session_id"])
    assert live["parent_id"] is None
    assert all(row["revoked_at"] is None for row in table_rows(app, "sessions"))


def test_a_replay_with_a_bad_token_revokes_nothing(make_app: MakeApp) -> None:
    """CSRF runs before reuse detection: a forged request cannot end a session."""
    app = make_app(**COOKIE_MODE, COCART_JWT_REFRESH_REUSE_INTERVAL=0)
    browser = BrowserActions(app.test_client())
    browser.login()
    consumed = str(browser.refresh_cookie())
    assert browser.refresh().status_code == 200
    browser.client.set_cookie(REFRESH_COOKIE, consumed, path="/auth")
    other = _other_session(app)
    response = browser.client.post("/auth/refresh-token", headers=_plant(browser, other))
    assert_error(response, 403, "csrf_failed")
    assert all(row["revoked_at"] is None for row in table_rows(app, "sessions"))


def test_tokens_are_compared_in_constant_time(
    make_app: MakeApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The header against the cookie, the MAC and the session: hmac.compare_digest."""
    calls: list[tuple[bytes, bytes]] = []
    constant_time = hmac.compare_digest

    def compare(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return constant_time(a, b)

    monkeypatch.setattr(csrf_module.hmac, "compare_digest", compare)
    app = make_app(**COOKIE_MODE)
    browser = BrowserActions(app.test_client())
    login = browser.login()
    token = str(browser.csrf()).encode()
    assert browser.refresh().status_code == 200
    session = login.json["session_id"].encode()
    assert calls[0] == (token, token)  # header and cookie
    assert len(calls) == 3
    assert calls[2] == (session, session)  # the token's session and the refresh token's


def test_csrf_tokens_are_fresh_per_login_and_bound(make_app: MakeApp) -> None:
    app = make_app(**COOKIE_MODE)
    browser = BrowserActions(app.test_client())
    first = browser.login()
    token = str(browser.csrf())
    second = browser.login()
    assert browser.csrf() != token
    assert str(browser.csrf()).split(".")[0] == second.json["session_id"]
    assert token.split(".")[0] == first.json["session_id"]


def test_csrf_header_name_is_configurable(make_app: MakeApp) -> None:
    app = make_app(**COOKIE_MODE, COCART_JWT_CSRF_HEADER_NAME="X-XSRF-Token")
    browser = BrowserActions(app.test_client())
    browser.login()
    token = str(browser.csrf())
    assert_error(browser.refresh(), 403, "csrf_failed")  # the default header is not read
    response = browser.client.post(
        "/auth/refresh-token", headers={"Origin": ORIGIN, "X-XSRF-Token": token}
    )
    assert response.status_code == 200


def test_json_transport_needs_no_csrf(app: Flask) -> None:
    """Without cookie mode nothing changes: no Origin check, no CSRF header."""
    auth = AuthActions(app.test_client())
    tokens = auth.tokens()
    response = app.test_client().post(
        "/auth/refresh-token",
        json={"refresh_token": tokens["refresh_token"]},
        headers={"Origin": "https://evil.example"},
    )
    assert response.status_code == 200
    assert "refresh_token" in response.json

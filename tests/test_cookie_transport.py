"""Cookie transport (SPEC 10): which requests use it, and every header and attribute it sends.

``Set-Cookie`` headers are parsed (``tests.support.set_cookies``), never
substring-matched. The CSRF refusals are in ``test_csrf.py``; the same flows
in a real Chromium are in ``tests/browser``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from flask import Flask

from flask_cocart_jwt import CoCartJWT
from tests.conftest import NO_LIMITS, TOKEN_FIELDS, AuthActions, assert_error
from tests.support import (
    ACCESS_COOKIE,
    CSRF_COOKIE,
    ORIGIN,
    REFRESH_COOKIE,
    BrowserActions,
    SetCookie,
    live_tokens,
    set_cookies,
    table_rows,
)

MakeApp = Callable[..., Flask]
COOKIE_MODE = {"COCART_JWT_COOKIE_MODE": True, **NO_LIMITS}


@pytest.fixture
def app(make_app: MakeApp) -> Flask:
    """An app in cookie mode, rate limits off."""
    return make_app(**COOKIE_MODE)


@pytest.fixture
def browser(app: Flask) -> BrowserActions:
    return BrowserActions(app.test_client())


def assert_cleared(response: Any, *, path: str = "/auth", names: tuple[str, ...] = ()) -> None:
    """Both cookies (and ``names``) cleared: empty, ``Max-Age=0``, same Path, no Domain."""
    cookies = set_cookies(response)
    expected = {REFRESH_COOKIE: path, CSRF_COOKIE: "/", **dict.fromkeys(names, "/")}
    assert set(cookies) == set(expected)
    for name, cookie_path in expected.items():
        cookie = cookies[name]
        assert cookie.value == ""
        assert cookie["Max-Age"] == "0"
        assert cookie["Expires"] == "Thu, 01 Jan 1970 00:00:00 GMT"
        assert cookie["Path"] == cookie_path
        assert not cookie.has("Domain")


def assert_refresh_cookie(cookie: SetCookie, lifetime: int, *, path: str = "/auth") -> None:
    assert cookie.value.startswith("rt_")
    assert cookie["HttpOnly"] is True
    assert cookie["Secure"] is True
    assert cookie["SameSite"] == "Strict"
    assert cookie["Path"] == path
    assert cookie["Max-Age"] == str(lifetime)
    assert cookie.has("Expires")
    assert not cookie.has("Domain")


# -- login -----------------------------------------------------------------------


def test_login_sets_the_cookies_and_leaves_the_refresh_token_out(
    browser: BrowserActions, make_app: MakeApp
) -> None:
    login = browser.login()
    assert login.status_code == 200
    assert set(login.json) == TOKEN_FIELDS - {"refresh_token"}
    cookies = set_cookies(login)
    assert set(cookies) == {REFRESH_COOKIE, CSRF_COOKIE}
    lifetime = login.json["refresh_token_expires_in"]
    assert lifetime == 30 * 86400
    assert_refresh_cookie(cookies[REFRESH_COOKIE], lifetime)
    csrf = cookies[CSRF_COOKIE]
    assert not csrf.has("HttpOnly")  # the page's script reads it
    assert csrf["Secure"] is True
    assert csrf["SameSite"] == "Strict"
    assert csrf["Path"] == "/"
    assert csrf["Max-Age"] == str(lifetime)
    assert csrf.value.split(".")[0] == login.json["session_id"]
    assert login.headers["Cache-Control"] == "no-store"
    # The cookie's value is the session's refresh token itself.
    refreshed = AuthActions(browser.client).refresh(cookies[REFRESH_COOKIE].value)
    assert refreshed.status_code == 200
    assert refreshed.json["session_id"] == login.json["session_id"]


def test_login_response_loader_fields_stay(make_app: MakeApp) -> None:
    ext = CoCartJWT()
    ext.login_response_loader(lambda user: {"user": {"id": user.id}})
    app = make_app(extension=ext, **COOKIE_MODE)
    login = BrowserActions(app.test_client()).login()
    assert login.json["user"] == {"id": "alice"}
    assert "refresh_token" not in login.json


@pytest.mark.parametrize(
    ("config", "name", "attributes"),
    [
        (
            {"COCART_JWT_COOKIE_SAMESITE": "Lax", "COCART_JWT_COOKIE_SECURE": False},
            "cocart_rt",
            {"samesite": "Lax"},
        ),
        ({"COCART_JWT_COOKIE_SAMESITE": "None"}, REFRESH_COOKIE, {"samesite": "None"}),
        (
            {"COCART_JWT_COOKIE_DOMAIN": "shop.example", "COCART_JWT_REFRESH_COOKIE_NAME": "rt"},
            "rt",
            {"domain": "shop.example"},
        ),
        ({"COCART_JWT_URL_PREFIX": "/api/v1/auth"}, REFRESH_COOKIE, {"path": "/api/v1/auth"}),
        ({"COCART_JWT_URL_PREFIX": ""}, REFRESH_COOKIE, {"path": "/"}),
    ],
    ids=["lax-not-secure", "samesite-none", "domain", "prefix", "no-prefix"],
)
def test_configured_attributes(
    make_app: MakeApp, config: dict[str, Any], name: str, attributes: dict[str, str]
) -> None:
    app = make_app(**COOKIE_MODE, **config)
    prefix = config.get("COCART_JWT_URL_PREFIX", "/auth")
    login = BrowserActions(app.test_client(), prefix=prefix).login()
    assert login.status_code == 200, login.json
    cookies = set_cookies(login)
    assert set(cookies) == {name, CSRF_COOKIE}
    secure = config.get("COCART_JWT_COOKIE_SECURE", True)
    for cookie in cookies.values():
        assert cookie.has("Secure") is secure
        for key, value in attributes.items():
            if key != "path":
                assert cookie[key] == value
    assert cookies[name]["Path"] == attributes.get("path", "/auth")
    assert cookies[CSRF_COOKIE]["Path"] == "/"


def test_max_age_is_the_remaining_lifetime(make_app: MakeApp) -> None:
    """Capped by the session's absolute expiry, so a cookie never outlives its session."""
    app = make_app(
        **COOKIE_MODE,
        COCART_JWT_REFRESH_TOKEN_EXPIRES=timedelta(hours=1),
        COCART_JWT_SESSION_MAX_AGE=timedelta(hours=2),
    )
    browser = BrowserActions(app.test_client())
    with time_machine.travel(1_900_000_000, tick=False) as clock:
        login = browser.login()
        assert set_cookies(login)[REFRESH_COOKIE]["Max-Age"] == "3600"
        clock.shift(timedelta(minutes=50))
        assert set_cookies(browser.refresh())[REFRESH_COOKIE]["Max-Age"] == "3600"
        clock.shift(timedelta(minutes=50))  # 20 minutes of the session left
        refreshed = browser.refresh()
        assert refreshed.status_code == 200, refreshed.json
        cookies = set_cookies(refreshed)
        assert_refresh_cookie(cookies[REFRESH_COOKIE], 1200)
        assert cookies[CSRF_COOKIE]["Max-Age"] == "1200"
        assert refreshed.json["refresh_token_expires_in"] == 1200


# -- refresh ---------------------------------------------------------------------


def test_refresh_reads_and_rotates_the_cookie(browser: BrowserActions, app: Flask) -> None:
    login = browser.login()
    first, csrf = browser.refresh_cookie(), browser.csrf()
    refreshed = browser.refresh()
    assert refreshed.status_code == 200, refreshed.json
    assert set(refreshed.json) == TOKEN_FIELDS - {"refresh_token"}
    cookies = set_cookies(refreshed)
    assert set(cookies) == {REFRESH_COOKIE, CSRF_COOKIE}
    assert_refresh_cookie(cookies[REFRESH_COOKIE], refreshed.json["refresh_token_expires_in"])
    assert cookies[REFRESH_COOKIE].value != first
    # The CSRF token is the session's: set again unchanged, so another tab's
    # request that read it before this refresh still passes.
    assert cookies[CSRF_COOKIE].value == csrf
    (live,) = live_tokens(app, login.json["session_id"])
    assert browser.refresh_cookie() == cookies[REFRESH_COOKIE].value
    assert live["parent_id"] is not None
    assert browser.client.get("/me", headers=_bearer(refreshed)).status_code == 200


def test_refresh_without_a_refresh_cookie(browser: BrowserActions) -> None:
    response = browser.refresh()
    assert_error(response, 401, "invalid_refresh_token")
    assert_cleared(response)


def test_a_body_token_next_to_the_cookie_is_refused(browser: BrowserActions, app: Flask) -> None:
    """Cookie + JSON body on one browser request: refused, nothing rotated or set."""
    login = browser.login()
    other = AuthActions(browser.client).tokens("bob")["refresh_token"]
    for field in ("refresh_token", "token"):
        response = browser.client.post(
            "/auth/refresh-token", json={field: other}, headers=browser.headers()
        )
        assert_error(response, 400, "invalid_request")
        assert set_cookies(response) == {}
        # /revoke too, as JSON or as RFC 7009's form.
        for body in ({"json": {field: other}}, {"data": {field: other}}):
            response = browser.client.post("/auth/revoke", headers=browser.headers(), **body)
            assert_error(response, 400, "invalid_request")
            assert set_cookies(response) == {}
    assert all(row["revoked_at"] is None for row in table_rows(app, "sessions"))
    (live,) = live_tokens(app, login.json["session_id"])
    assert live["parent_id"] is None  # the login's token, unused
    assert AuthActions(browser.client).refresh(other).status_code == 200


def test_without_origin_the_cookie_is_ignored(browser: BrowserActions, app: Flask) -> None:
    """A request without Origin (mobile, server, curl) keeps JSON transport on the same app."""
    login = browser.login()
    cookie = browser.refresh_cookie()
    client = browser.client
    # No body: JSON transport wants one; the cookie is not read.
    assert_error(client.post("/auth/refresh-token"), 400, "invalid_request")
    # Cookie + JSON body without Origin: the body's token, JSON out, no cookie set.
    bob = AuthActions(client).tokens("bob")
    response = AuthActions(client).refresh(bob["refresh_token"])
    assert response.status_code == 200
    assert set(response.json) == TOKEN_FIELDS
    assert response.json["session_id"] == bob["session_id"]
    assert set_cookies(response) == {}
    assert browser.refresh_cookie() == cookie
    (live,) = live_tokens(app, login.json["session_id"])
    assert live["parent_id"] is None
    # Revoke without Origin: the cookie's session is not touched.
    assert_error(client.post("/auth/revoke"), 401, "missing_token")
    assert browser.refresh().status_code == 200


def test_json_clients_are_unchanged(app: Flask) -> None:
    auth = AuthActions(app.test_client())
    login = auth.login()
    assert set(login.json) == TOKEN_FIELDS
    assert set_cookies(login) == {}
    refreshed = auth.refresh(login.json["refresh_token"])
    assert set(refreshed.json) == TOKEN_FIELDS
    assert set_cookies(refreshed) == {}


# -- what ends a session clears the cookies --------------------------------------


def test_revoke_revokes_the_cookie_session_and_clears(browser: BrowserActions, app: Flask) -> None:
    login = browser.login()
    response = browser.revoke()
    assert response.status_code == 200
    assert response.json == {"revoked": True}
    assert_cleared(response)
    (session,) = table_rows(app, "sessions")
    assert session["revoked_at"] is not None
    assert_error(browser.client.get("/me", headers=_bearer(login)), 401, "session_revoked")
    assert browser.refresh_cookie() is None
    assert browser.csrf() is None


def test_revoke_with_a_bearer_token_and_no_cookie(browser: BrowserActions, app: Flask) -> None:
    access = AuthActions(browser.client).tokens()["access_token"]
    response = browser.client.post(
        "/auth/revoke",
        headers={"Origin": ORIGIN, "Authorization": f"Bearer {access}"},
    )
    assert response.status_code == 200
    assert_cleared(response)
    assert table_rows(app, "sessions")[0]["revoked_at"] is not None


def test_revoke_without_any_token_clears(browser: BrowserActions, app: Flask) -> None:
    """A logout with nothing left to revoke (e.g. the cookie expired) still logs out."""
    response = browser.revoke()
    assert response.status_code == 200
    assert_cleared(response)


def test_revoke_all_clears_for_a_browser(browser: BrowserActions, app: Flask) -> None:
    login = browser.login()
    browser.login()
    response = browser.client.post("/auth/revoke-all", headers={"Origin": ORIGIN, **_bearer(login)})
    assert response.json == {"revoked": 2}
    assert_cleared(response)
    again = AuthActions(browser.client).tokens()
    plain = browser.client.post("/auth/revoke-all", headers=_bearer_token(again["access_token"]))
    assert plain.json == {"revoked": 1}
    assert set_cookies(plain) == {}


def test_reuse_detection_clears(make_app: MakeApp) -> None:
    app = make_app(**COOKIE_MODE, COCART_JWT_REFRESH_REUSE_INTERVAL=0)
    browser = BrowserActions(app.test_client())
    login = browser.login()
    stolen = browser.refresh_cookie()
    assert browser.refresh().status_code == 200
    browser.client.set_cookie(REFRESH_COOKIE, str(stolen), path="/auth")
    response = browser.refresh()
    assert_error(response, 401, "refresh_token_reused")
    assert_cleared(response)
    assert table_rows(app, "sessions")[0]["revoked_at"] is not None
    assert_error(browser.client.get("/me", headers=_bearer(login)), 401, "session_revoked")


@pytest.mark.parametrize("csrf", ["own", "other-session"])
def test_a_replay_past_its_per_token_limit(make_app: MakeApp, csrf: str) -> None:
    """The 429 still revokes the session and clears the cookies; with another
    session's CSRF token it is refused (403) and revokes nothing."""
    app = make_app(
        COCART_JWT_COOKIE_MODE=True,
        COCART_JWT_REFRESH_REUSE_INTERVAL=0,
        COCART_JWT_LIMIT_REFRESH_PER_TOKEN="1 per minute",
    )
    browser = BrowserActions(app.test_client())
    browser.login()
    consumed = str(browser.refresh_cookie())
    assert browser.refresh().status_code == 200
    browser.client.set_cookie(REFRESH_COOKIE, consumed, path="/auth")
    headers = browser.headers()
    if csrf == "other-session":
        other = BrowserActions(app.test_client())
        other.login("bob")
        token = str(other.csrf())
        browser.client.set_cookie(CSRF_COOKIE, token)
        headers = browser.headers(**{"X-CSRF-Token": token})
    response = browser.client.post("/auth/refresh-token", headers=headers)
    (alice,) = [row for row in table_rows(app, "sessions") if row["identity"] == "alice"]
    if csrf == "own":
        assert_error(response, 429, "rate_limited")
        assert_cleared(response)
        assert alice["revoked_at"] is not None
    else:
        assert_error(response, 403, "csrf_failed")
        assert set_cookies(response) == {}
        assert alice["revoked_at"] is None


@pytest.mark.parametrize("failure", ["expired", "revoked", "unknown", "oversized", "user_gone"])
def test_refresh_failures_that_end_the_session_clear(make_app: MakeApp, failure: str) -> None:
    ext = CoCartJWT()
    users = {"alice"}
    ext.user_loader(lambda identity: identity if identity in users else None)
    ext.user_identity_loader(lambda user: str(getattr(user, "id", user)))
    app = make_app(extension=ext, **COOKIE_MODE)
    browser = BrowserActions(app.test_client())
    browser.login()
    expected = {
        "expired": "refresh_token_expired",
        "revoked": "invalid_refresh_token",
        "unknown": "invalid_refresh_token",
        "oversized": "invalid_refresh_token",
        "user_gone": "user_not_found",
    }[failure]
    with time_machine.travel(timedelta(days=31 if failure == "expired" else 0)):
        if failure == "revoked":
            with app.app_context():
                assert ext.revoke_user("alice") == 1
        elif failure == "unknown":
            browser.client.set_cookie(REFRESH_COOKIE, "rt_" + "A" * 43, path="/auth")
        elif failure == "oversized":  # longer than any refresh token is looked up
            with pytest.warns(UserWarning, match="too large"):
                browser.client.set_cookie(REFRESH_COOKIE, "rt_" + "A" * 9000, path="/auth")
        elif failure == "user_gone":
            users.clear()
        response = browser.refresh()
    assert_error(response, 401, expected)
    assert_cleared(response)


def test_refusals_that_keep_the_session_keep_the_cookies(make_app: MakeApp) -> None:
    """A 429 (and a CSRF 403, see test_csrf.py) sets nothing: the session goes on."""
    app = make_app(COCART_JWT_COOKIE_MODE=True, COCART_JWT_LIMIT_REFRESH_PER_IP="1 per minute")
    browser = BrowserActions(app.test_client())
    browser.login()
    assert browser.refresh().status_code == 200
    cookie = browser.refresh_cookie()
    limited = browser.refresh()
    assert_error(limited, 429, "rate_limited")
    assert set_cookies(limited) == {}
    assert browser.refresh_cookie() == cookie


# -- the access cookie (COCART_JWT_ACCESS_COOKIE) --------------------------------

ACCESS = {**COOKIE_MODE, "COCART_JWT_ACCESS_COOKIE": True}


def test_access_cookie_is_set_with_the_refresh_cookie(make_app: MakeApp) -> None:
    browser = BrowserActions(make_app(**ACCESS).test_client())
    login = browser.login()
    cookies = set_cookies(login)
    assert set(cookies) == {REFRESH_COOKIE, CSRF_COOKIE, ACCESS_COOKIE}
    access = cookies[ACCESS_COOKIE]
    assert access.value == login.json["access_token"]
    assert access["HttpOnly"] is True
    assert access["Secure"] is True
    assert access["SameSite"] == "Strict"
    assert access["Path"] == "/"
    assert access["Max-Age"] == str(login.json["expires_in"])
    refreshed = browser.refresh()
    assert set_cookies(refreshed)[ACCESS_COOKIE].value == refreshed.json["access_token"]
    assert_cleared(browser.revoke(), names=(ACCESS_COOKIE,))


def test_jwt_required_reads_the_access_cookie(make_app: MakeApp) -> None:
    browser = BrowserActions(make_app(**ACCESS).test_client())
    login = browser.login()
    client = browser.client
    # Safe methods: the cookie alone, with or without Origin.
    me = client.get("/me")
    assert me.status_code == 200
    assert me.json["claims"]["sid"] == login.json["session_id"]
    assert client.get("/optional").json == {"identity": "alice"}
    # Unsafe methods: the CSRF checks (refusals in test_csrf.py).
    assert client.post("/fresh", headers=browser.headers()).json == {"identity": "alice"}
    assert_error(client.post("/fresh"), 403, "csrf_failed")
    # The token routes take it too.
    validated = client.post("/auth/validate-token", headers=browser.headers())
    assert validated.json["session_id"] == login.json["session_id"]
    assert client.get("/auth/sessions").json["sessions"][0]["current"] is True


def test_an_authorization_header_wins_over_the_access_cookie(make_app: MakeApp) -> None:
    browser = BrowserActions(make_app(**ACCESS).test_client())
    browser.login()
    client = browser.client
    assert_error(client.get("/me", headers=_bearer_token("not.a.jwt")), 401, "invalid_token")
    bob = AuthActions(client).tokens("bob")["access_token"]
    assert client.get("/me", headers=_bearer_token(bob)).json["identity"] == "bob"
    # A Bearer request needs no CSRF header, whatever cookies it carries.
    assert client.post("/fresh", headers=_bearer_token(bob)).json == {"identity": "bob"}


def test_access_cookie_is_ignored_unless_configured(browser: BrowserActions) -> None:
    login = browser.login()
    browser.client.set_cookie(ACCESS_COOKIE, login.json["access_token"])
    assert_error(browser.client.get("/me"), 401, "missing_token")


# -- helpers ---------------------------------------------------------------------


def _bearer(response: Any) -> dict[str, str]:
    return _bearer_token(response.json["access_token"])


def _bearer_token(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}

"""DPoP with cookie mode: one service shape, both transports.

A browser in cookie mode that sends proofs gets a bound session whose
refresh token is in the HttpOnly cookie: the cookie alone, stolen or replayed
by a page script, no longer refreshes without the key's proof.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask

from tests.conftest import NO_LIMITS
from tests.dpop_support import ProofKey, assert_dpop_error
from tests.support import ACCESS_COOKIE, REFRESH_COOKIE, BrowserActions, live_tokens, set_cookies


def dpop_login(browser: BrowserActions, key: ProofKey) -> Any:
    """A browser's login (``Origin``) with a proof."""
    return browser.client.post(
        "/auth/login",
        json={"username": "alice", "password": "wonderland"},
        headers={"Origin": browser.origin, "DPoP": key.proof("POST", "/auth/login")},
    )


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app(
        COCART_JWT_COOKIE_MODE=True,
        COCART_JWT_ACCESS_COOKIE=True,
        COCART_JWT_DPOP="optional",
        **NO_LIMITS,
    )


def test_a_browser_login_with_a_proof_binds_the_cookie_session(app: Flask) -> None:
    browser = BrowserActions(app.test_client())
    key = ProofKey()
    login = dpop_login(browser, key)
    assert login.status_code == 200, login.json
    assert login.json["token_type"] == "DPoP"
    assert "refresh_token" not in login.json
    cookies = set_cookies(login)
    assert REFRESH_COOKIE in cookies
    # A bound access token is never put in a cookie: it needs its proof.
    assert ACCESS_COOKIE not in cookies
    token = login.json["access_token"]
    me = app.test_client().get(
        "/me",
        headers={
            "Authorization": f"DPoP {token}",
            "DPoP": key.proof("GET", "/me", access_token=token),
        },
    )
    assert me.status_code == 200, me.json


def test_the_refresh_cookie_of_a_bound_session_needs_the_proof(app: Flask) -> None:
    browser = BrowserActions(app.test_client())
    key = ProofKey()
    login = dpop_login(browser, key)
    session = login.json["session_id"]
    before = live_tokens(app, session)
    refused = browser.refresh()
    assert_dpop_error(refused)
    assert set_cookies(refused) == {}  # the session goes on: nothing cleared
    assert live_tokens(app, session) == before
    assert_dpop_error(browser.refresh(DPoP=ProofKey().proof("POST", "/auth/refresh-token")))
    refreshed = browser.refresh(DPoP=key.proof("POST", "/auth/refresh-token"))
    assert refreshed.status_code == 200, refreshed.json
    assert refreshed.json["token_type"] == "DPoP"
    assert REFRESH_COOKIE in set_cookies(refreshed)


def test_a_browser_without_proofs_keeps_plain_cookie_mode(app: Flask) -> None:
    browser = BrowserActions(app.test_client())
    login = browser.login()
    assert login.json["token_type"] == "Bearer"
    assert ACCESS_COOKIE in set_cookies(login)
    assert browser.refresh().status_code == 200


def test_logout_of_a_bound_cookie_session_needs_the_proof(app: Flask) -> None:
    browser = BrowserActions(app.test_client())
    key = ProofKey()
    dpop_login(browser, key)
    assert_dpop_error(browser.revoke())
    assert browser.refresh_cookie() is not None
    done = browser.revoke(DPoP=key.proof("POST", "/auth/revoke"))
    assert done.status_code == 200
    assert browser.refresh_cookie() is None

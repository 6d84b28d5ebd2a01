"""Browser sessions (SPEC 10) in a real Chromium, against real servers.

The six scenarios of the cookie-mode issue, each through the example shop's
browser page (``examples/browser``, ``examples/js/client.mjs`` in cookie
mode) or a page of another site. The servers and the browser are shared by
the module (``conftest.py``); every test has its own browser context, so its
own cookie jar, and finds its session by the CSRF cookie, whose value starts
with the session id.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import TIMEOUT_MS, Api, Server
from tests.support import CSRF_COOKIE, REFRESH_COOKIE, live_tokens, table_rows

pytestmark = pytest.mark.browser

PASSWORD = "demo-password"


# -- helpers ---------------------------------------------------------------------


def open_page(context: Any, url: str) -> Page:
    """Open the shop page at ``url`` and wait until it knows whether it is logged in."""
    page: Page = context.new_page()
    page.goto(url)
    expect(page.locator("#status")).not_to_have_text("Loading...", timeout=TIMEOUT_MS)
    return page


def log_in(page: Page) -> None:
    """Log in through the page's form, as a person would."""
    page.fill("input[name=username]", "demo")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    expect_status(page, "Logged in")


def expect_status(page: Page, text: str) -> None:
    expect(page.locator("#status")).to_have_text(text, timeout=TIMEOUT_MS)


def cookies(context: Any) -> dict[str, dict[str, Any]]:
    """The context's cookies by name (the test sees HttpOnly ones; pages do not)."""
    return {cookie["name"]: cookie for cookie in context.cookies()}


def session_of(context: Any) -> str:
    """The session id of the context's login: the first part of its CSRF cookie."""
    return str(cookies(context)[CSRF_COOKIE]["value"].split(".")[0])


def session_row(api: Api, session_id: str) -> dict[str, Any]:
    (row,) = [row for row in table_rows(api.app, "sessions") if row["id"] == session_id]
    return row


def refresh_tokens_of(api: Api, session_id: str) -> int:
    return len([r for r in table_rows(api.app, "refresh_tokens") if r["session_id"] == session_id])


# -- 1. reload and browser restart -------------------------------------------------


def test_reload_and_browser_restart_keep_the_session(
    browser: Any, chromium_executable: str, servers: dict[str, Server], tmp_path: Path
) -> None:
    """Scenario 1: log in through the page; a reload, then a browser restart with
    the same profile, find the user still logged in (the cookies persist with
    their Max-Age, the access token is fetched again from the refresh cookie)."""
    url = servers["api"].url()
    profile = tmp_path / "profile"

    def launch() -> Any:
        # The same profile folder each time: a browser restart.
        context = browser.browser_type.launch_persistent_context(
            str(profile), executable_path=chromium_executable
        )
        context.set_default_timeout(TIMEOUT_MS)
        return context

    first = launch()
    try:
        page = open_page(first, url)
        expect_status(page, "Logged out")
        log_in(page)
        page.click("#add")
        expect(page.locator("#cart li")).to_have_text(["1 x Coffee beans"])
        session = session_of(first)
        page.click("#reload")  # location.reload(): the page's memory is gone
        expect_status(page, "Logged in")
        expect(page.locator("#cart li")).to_have_text(["1 x Coffee beans"])
        assert page.evaluate("shop.client.accessToken") is not None
    finally:
        first.close()  # the browser exits; its profile keeps the cookies
    second = launch()
    try:
        page = open_page(second, url)
        expect_status(page, "Logged in")
        expect(page.locator("#cart li")).to_have_text(["1 x Coffee beans"])
        assert session_of(second) == session
        page.click("#logout")
        expect_status(page, "Logged out")
    finally:
        second.close()


# -- 2. the refresh token is out of reach of the page's JavaScript -------------------


def test_page_javascript_cannot_read_the_refresh_token(context: Any, api: Api) -> None:
    """Scenario 2: not in document.cookie, not in any response the page sees,
    not in the client's memory; the JSON never has a refresh_token."""
    page = open_page(context, api.url())
    bodies: list[str] = []
    page.on(
        "response",
        lambda response: bodies.append(response.text()) if "/auth/" in response.url else None,
    )
    log_in(page)
    refreshed = page.evaluate(
        """async () => {
            const csrf = document.cookie.split('; ').find((c) => c.startsWith('cocart_csrf='));
            const response = await fetch('/auth/refresh-token', {
                method: 'POST', headers: {'X-CSRF-Token': csrf.slice('cocart_csrf='.length)},
            });
            return {status: response.status, body: await response.json()};
        }"""
    )
    page.reload()
    expect_status(page, "Logged in")
    jar = cookies(context)
    refresh = jar[REFRESH_COOKIE]
    assert refresh["httpOnly"] is True
    assert refresh["path"] == "/auth"
    token = refresh["value"]
    assert token.startswith("rt_")
    readable = page.evaluate("document.cookie")
    assert REFRESH_COOKIE not in readable
    assert token not in readable
    assert readable.startswith(f"{CSRF_COOKIE}=")
    assert refreshed["status"] == 200
    assert "refresh_token" not in refreshed["body"]
    assert page.evaluate("shop.client.refreshToken") is None
    # Login, two refreshes (the fetch and the reload): no body carries a token.
    assert len(bodies) == 3
    for body in bodies:
        document = json.loads(body)
        assert "access_token" in document
        assert "refresh_token" not in document
        assert "rt_" not in body


# -- 3. cross-site forms and fetches -----------------------------------------------


@pytest.mark.parametrize("samesite", ["strict", "none"])
def test_cross_site_requests_are_refused(
    context: Any, servers: dict[str, Server], samesite: str
) -> None:
    """Scenario 3: a page on another site (127.0.0.1 vs localhost) posts a
    self-submitting form and fetch()es with credentials to /auth/refresh-token
    and /auth/revoke. Refused (403 by the origin check); no rotation, no
    revocation, the cookies unchanged. With SameSite=Strict the browser does
    not even send the cookies; with SameSite=None it sends them on the form
    navigation, and the server's origin check alone refuses."""
    api = servers["api" if samesite == "strict" else "api_samesite_none"]
    assert isinstance(api, Api)
    api.reset()
    page = open_page(context, api.url())
    log_in(page)
    session = session_of(context)
    before = cookies(context)
    tokens = refresh_tokens_of(api, session)
    attacker = servers["attacker"]
    evil = context.new_page()
    for route in ("refresh-token", "revoke"):
        evil.goto(attacker.url(f"/{samesite}/form/{route}"))
        evil.wait_for_url(f"{api.origin}/auth/{route}")
    evil.goto(attacker.url(f"/{samesite}/fetch"))
    expect(evil.locator("#done")).to_have_text("done")
    for route in ("refresh-token", "revoke"):
        answers = api.answers(f"/auth/{route}")
        assert len(answers) == 2, answers  # the form and the fetch
        for status, origin, sent in answers:
            assert status == 403
            assert origin == attacker.origin
            assert REFRESH_COOKIE not in sent or samesite == "none"
        if samesite == "none":  # the form navigation carried the cookies
            assert REFRESH_COOKIE in answers[0][2]
    assert cookies(context) == before
    assert session_row(api, session)["revoked_at"] is None
    assert refresh_tokens_of(api, session) == tokens
    page.reload()
    expect_status(page, "Logged in")


# -- 4. two tabs ------------------------------------------------------------------


@pytest.mark.parametrize("locks", ["web-locks", "no-web-locks"])
def test_two_tabs(context: Any, api: Api, locks: str) -> None:
    """Scenario 4: two tabs refreshing at the same moment both stay logged in,
    with no reuse alarm; a logout in one tab logs the other out at its next call.

    With the Web Locks API the refreshes run one after the other across the
    tabs (two rotations); without it (older browsers) both send the same
    cookie and the reuse interval gives the second the same successor."""
    if locks == "no-web-locks":
        context.add_init_script("delete Object.getPrototypeOf(navigator).locks;")
    first = open_page(context, api.url())
    log_in(first)
    second = open_page(context, api.url())
    expect_status(second, "Logged in")
    assert first.evaluate("'locks' in navigator") is (locks == "web-locks")
    api.reset()
    start = """() => {
        const channel = new BroadcastChannel('go');
        window.result = new Promise((resolve) => {
            channel.onmessage = () => shop.client.refresh().then(
                () => resolve('ok'), (error) => resolve(error.code));
        });
    }"""
    first.evaluate(start)
    second.evaluate(start)
    first.evaluate("() => new BroadcastChannel('go').postMessage('now')")  # both at once
    assert first.evaluate("window.result") == "ok"
    assert second.evaluate("window.result") == "ok"
    assert sorted(api.rotations) == ([True, True] if locks == "web-locks" else [False, True])
    session = session_of(context)
    assert session_row(api, session)["revoked_at"] is None
    assert len(live_tokens(api.app, session)) == 1
    assert first.evaluate("shop.cart()") == 200
    assert second.evaluate("shop.cart()") == 200
    # Log out in the first tab; the second finds out at its next call.
    first.click("#logout")
    expect_status(first, "Logged out")
    expect_status(second, "Logged in")
    assert second.evaluate("shop.cart()") == 401
    expect_status(second, "Logged out")
    assert session_row(api, session)["revoked_at"] is not None
    assert REFRESH_COOKIE not in cookies(context)


# -- 5. an SPA on another origin ---------------------------------------------------


def test_spa_on_another_origin(context: Any, servers: dict[str, Server]) -> None:
    """Scenario 5: the page served from a second origin, with Flask-CORS
    (exact origins, supports_credentials) on the API: it works from the origin
    in COCART_JWT_CSRF_TRUSTED_ORIGINS, and is refused (403 csrf_failed) from
    one that CORS allows but the CSRF check does not trust."""
    api = servers["api"]
    assert isinstance(api, Api)
    api.reset()
    spa, untrusted = servers["spa"], servers["spa_untrusted"]
    page = open_page(context, spa.url())
    log_in(page)
    page.click("#add")
    expect(page.locator("#cart li")).to_have_count(1)
    page.reload()
    expect_status(page, "Logged in")
    session = session_of(context)
    assert all(origin == spa.origin for _, _, origin, _ in api.log)
    # The untrusted origin reads the (host-wide) CSRF cookie and sends it, with
    # the cookies: the origin check refuses, and the session is left alone.
    other = open_page(context, untrusted.url())
    expect_status(other, "Logged out")
    other.fill("input[name=password]", PASSWORD)
    other.click("button[type=submit]")
    expect(other.locator("#error")).not_to_be_empty()
    refused = [answer for answer in api.log if answer[2] == untrusted.origin]
    assert [(path, status) for path, status, _, _ in refused] == [
        ("/auth/refresh-token", 403),
        ("/auth/login", 403),
    ]
    assert REFRESH_COOKIE in refused[0][3]  # the cookies did travel
    assert session_of(context) == session
    assert session_row(api, session)["revoked_at"] is None
    page.reload()
    expect_status(page, "Logged in")


# -- 6. a stolen refresh cookie ----------------------------------------------------


def test_stolen_refresh_cookie_replayed_after_rotation(context: Any, api: Api) -> None:
    """Scenario 6: the refresh cookie copied out of the browser and replayed by
    another client after the browser rotated it: the session is revoked, and
    the browser is logged out at its next call.

    The browser rotates twice, so that the stolen token is no longer the
    direct parent of an unused successor (which the reuse interval would
    hand out again, as to a second tab)."""
    page = open_page(context, api.url())
    log_in(page)
    session = session_of(context)
    stolen = cookies(context)[REFRESH_COOKIE]["value"]
    for _ in range(2):
        page.evaluate("shop.client.refresh()")
    assert cookies(context)[REFRESH_COOKIE]["value"] != stolen
    # Another client (no Origin: JSON transport) replays the stolen token.
    replay = _post_json(api, "/auth/refresh-token", {"refresh_token": stolen})
    assert replay == (401, "refresh_token_reused")
    assert session_row(api, session)["revoked_at"] is not None
    # The browser's next call: its access token is refused, its refresh cookie
    # too, and it ends up logged out with its cookies cleared.
    assert page.evaluate("shop.cart()") == 401
    expect_status(page, "Logged out")
    assert REFRESH_COOKIE not in cookies(context)
    assert CSRF_COOKIE not in cookies(context)
    page.reload()
    expect_status(page, "Logged out")


def _post_json(api: Api, path: str, body: dict[str, Any]) -> tuple[int, str]:
    """POST JSON from outside the browser; the status and the error code."""
    connection = http.client.HTTPConnection("127.0.0.1", api.server.server_port, timeout=30)
    try:
        connection.request(
            "POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"}
        )
        response = connection.getresponse()
        return response.status, json.loads(response.read())["error"]
    finally:
        connection.close()


@pytest.fixture(autouse=True)
def _no_page_errors(context: Any) -> Iterator[None]:
    """Any uncaught error in a page of the test fails it."""
    errors: list[str] = []
    context.on("weberror", lambda error: errors.append(str(error.error)))
    yield
    assert errors == []

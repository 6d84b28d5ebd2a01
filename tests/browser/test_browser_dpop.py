"""DPoP (SPEC 11) in a real Chromium: a key that no script can take away.

The example shop's page with ``?dpop=1`` (``examples/js/client.mjs`` with
``{ dpop: true }``) makes a non-extractable P-256 key with WebCrypto, keeps it
in IndexedDB and signs a proof for every request. Logged in that way, the
session is bound to the key: the page keeps working across reloads, while the
tokens copied out of it (the access token any page script can read, and even
the HttpOnly refresh cookie) are refused from another client, with or
without a key of its own. Servers and browser come from ``conftest.py``.
"""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, expect
from werkzeug.serving import make_server

from examples.shop import create_app as create_shop
from examples.shop import init_db
from tests.browser.conftest import TIMEOUT_MS, Api, Server
from tests.conftest import SECRET
from tests.dpop_support import ProofKey
from tests.support import CSRF_COOKIE, REFRESH_COOKIE, close_app, table_rows

pytestmark = pytest.mark.browser

#: Reads the page's key pair from IndexedDB and tries to export its private key.
READ_KEY = """async () => {
    const db = await new Promise((resolve, reject) => {
        const open = indexedDB.open('cocart-jwt-dpop');
        open.onsuccess = () => resolve(open.result);
        open.onerror = () => reject(open.error);
    });
    const pair = await new Promise((resolve, reject) => {
        const get = db.transaction('keys').objectStore('keys').get('dpop');
        get.onsuccess = () => resolve(get.result);
        get.onerror = () => reject(get.error);
    });
    db.close();
    const exported = await crypto.subtle.exportKey('jwk', pair.privateKey)
        .then(() => 'exported', (error) => error.name);
    return {
        extractable: pair.privateKey.extractable,
        curve: pair.privateKey.algorithm.namedCurve,
        exported,
    };
}"""


def open_page(context: Any, url: str) -> Page:
    page: Page = context.new_page()
    page.goto(url)
    expect(page.locator("#status")).not_to_have_text("Loading...", timeout=TIMEOUT_MS)
    return page


def expect_status(page: Page, text: str) -> None:
    expect(page.locator("#status")).to_have_text(text, timeout=TIMEOUT_MS)


def log_in(page: Page) -> None:
    page.fill("input[name=username]", "demo")
    page.fill("input[name=password]", "demo-password")
    page.click("button[type=submit]")
    expect_status(page, "Logged in")


def session_row(api: Api, session_id: str) -> dict[str, Any]:
    (row,) = [row for row in table_rows(api.app, "sessions") if row["id"] == session_id]
    return row


def other_client(api: Server, method: str, path: str, headers: dict[str, str]) -> tuple[int, str]:
    """A request from outside the browser (http.client): status and error code."""
    parts = urlsplit(api.origin)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=20)
    try:
        conn.request(method, path, headers={"Connection": "close", **headers})
        response = conn.getresponse()
        body = json.loads(response.read() or b"{}")
    finally:
        conn.close()
    return response.status, str(body.get("error", ""))


def test_dpop_login_binds_the_session_and_copied_tokens_are_refused(
    context: Any, servers: dict[str, Server]
) -> None:
    api = servers["api"]
    assert isinstance(api, Api)
    api.reset()
    page = open_page(context, api.url("/?dpop=1"))
    expect(page.locator("#mode")).to_have_text("Cookie mode, DPoP")
    expect_status(page, "Logged out")
    log_in(page)
    page.click("#add")
    expect(page.locator("#cart li")).to_have_text(["1 x Coffee beans"])

    # The session is bound to the page's key, which no script can export.
    assert page.evaluate("shop.client.tokenType") == "DPoP"
    jar = {cookie["name"]: cookie for cookie in context.cookies()}
    session = str(jar[CSRF_COOKIE]["value"]).split(".")[0]
    jkt = session_row(api, session)["dpop_jkt"]
    assert jkt
    assert page.evaluate(READ_KEY) == {
        "extractable": False,
        "curve": "P-256",
        "exported": "InvalidAccessError",
    }
    # Every call of the page carried a proof: none was refused.
    assert {status for status, _origin, _sent in api.answers("/cart")} == {200, 201}

    # A reload keeps the session: the refresh cookie, with a proof by the key
    # the page finds again in IndexedDB.
    page.click("#reload")
    expect_status(page, "Logged in")
    expect(page.locator("#cart li")).to_have_text(["1 x Coffee beans"])
    assert session_row(api, session)["dpop_jkt"] == jkt
    rotations = list(api.rotations)
    assert rotations == [True]

    # What a page script (or anyone) can copy: the access token; and the
    # HttpOnly refresh cookie, as a thief with the cookie jar would have it.
    access = page.evaluate("shop.client.accessToken")
    jar = {cookie["name"]: cookie for cookie in context.cookies()}
    cookie_header = "; ".join(
        f"{name}={jar[name]['value']}" for name in (REFRESH_COOKIE, CSRF_COOKIE)
    )
    thief = ProofKey()
    cart = api.url("/cart")
    attempts = {
        "as Bearer": other_client(api, "GET", "/cart", {"Authorization": f"Bearer {access}"}),
        "as DPoP, no proof": other_client(api, "GET", "/cart", {"Authorization": f"DPoP {access}"}),
        "as DPoP, own key": other_client(
            api,
            "GET",
            "/cart",
            {
                "Authorization": f"DPoP {access}",
                "DPoP": thief.proof("GET", cart, access_token=access),
            },
        ),
    }
    browser_like = {
        "Origin": api.origin,
        "Cookie": cookie_header,
        "X-CSRF-Token": str(jar[CSRF_COOKIE]["value"]),
    }
    attempts["refresh cookie, no proof"] = other_client(
        api, "POST", "/auth/refresh-token", browser_like
    )
    attempts["refresh cookie, own key"] = other_client(
        api,
        "POST",
        "/auth/refresh-token",
        {**browser_like, "DPoP": thief.proof("POST", api.url("/auth/refresh-token"))},
    )
    assert attempts == {
        "as Bearer": (401, "invalid_token"),
        "as DPoP, no proof": (401, "invalid_dpop_proof"),
        "as DPoP, own key": (401, "invalid_dpop_proof"),
        "refresh cookie, no proof": (401, "invalid_dpop_proof"),
        "refresh cookie, own key": (401, "invalid_dpop_proof"),
    }
    assert api.rotations == rotations  # nothing rotated, nothing revoked
    assert session_row(api, session)["revoked_at"] is None

    # The page, with its key, goes on working.
    page.click("#add")
    expect(page.locator("#cart li")).to_have_text(["1 x Coffee beans", "1 x Coffee beans"])
    page.click("#logout")
    expect_status(page, "Logged out")
    assert session_row(api, session)["revoked_at"] is not None


@pytest.fixture(scope="module")
def json_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The shop without cookie mode: browsers get JSON transport too."""
    folder = tmp_path_factory.mktemp("json_api")
    app = create_shop(
        {
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{folder / 'shop.sqlite3'}",
            "COCART_JWT_SECRET_KEY": SECRET,
            "COCART_JWT_RATELIMIT_ENABLED": False,
            "COCART_JWT_COOKIE_MODE": False,
        }
    )
    with app.app_context():
        init_db()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, name="server-json-api", daemon=True).start()
    try:
        yield Server(app, "localhost", server)
    finally:
        server.shutdown()
        server.server_close()
        close_app(app)


def test_dpop_without_cookie_mode(context: Any, json_api: Server) -> None:
    """``?dpop=1&cookies=0`` on an API without cookie mode: JSON transport,
    the tokens in the page's memory, bound to the key all the same; a reload
    logs out (nothing survives it but the key)."""
    page = open_page(context, json_api.url("/?dpop=1&cookies=0"))
    expect(page.locator("#mode")).to_have_text("JSON mode, DPoP")
    log_in(page)
    assert page.evaluate("shop.client.tokenType") == "DPoP"
    assert page.evaluate("shop.client.refreshToken").startswith("rt_")
    assert context.cookies() == []
    (row,) = table_rows(json_api.app, "sessions")
    assert row["dpop_jkt"]
    page.click("#add")
    expect(page.locator("#cart li")).to_have_text(["1 x Coffee beans"])
    # A refresh with the key: the page's client rotates with a proof.
    assert page.evaluate("shop.client.refresh().then(() => shop.client.tokenType)") == "DPoP"
    assert page.evaluate("shop.cart()") == 200
    page.click("#reload")
    expect_status(page, "Logged out")

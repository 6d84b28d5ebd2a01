"""Cookie mode over real HTTP: two gunicorn servers (two workers each), one database.

The CSRF token is an HMAC with a key derived from the shared signing secret,
so a browser session opened on one worker goes on at any other worker and
host; and the cookies are exactly what the unit tests say, on the wire.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.integration import servers as srv
from tests.support import CSRF_COOKIE, REFRESH_COOKIE, SetCookie, parse_set_cookies

pytestmark = [pytest.mark.integration, pytest.mark.needs_server]


def post(
    port: int, path: str, *, origin: str | None, cookies: dict[str, str], csrf: str | None = None
) -> tuple[int, Any, dict[str, SetCookie]]:
    """POST with the given cookies (and ``Origin`` and CSRF header): status, JSON, Set-Cookie."""
    headers = {"Connection": "close", "Content-Type": "application/json"}
    if origin is not None:
        headers["Origin"] = origin
    if cookies:
        headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in cookies.items())
    if csrf is not None:
        headers["X-CSRF-Token"] = csrf
    body = json.dumps(srv.DEMO) if path.endswith("/login") else ""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        data = json.loads(response.read())
        return (
            response.status,
            data,
            parse_set_cookies(response.headers.get_all("Set-Cookie") or []),
        )
    finally:
        conn.close()


def test_a_browser_session_across_servers(
    postgresql_url: str, redis_url: str, start_servers: Callable[..., list[srv.Server]]
) -> None:
    a, b = start_servers(postgresql_url, redis_url, COCART_JWT_REFRESH_REUSE_INTERVAL="0")
    origin_a, origin_b = (f"http://127.0.0.1:{s.port}" for s in (a, b))
    status, login, cookies = post(a.port, "/auth/login", origin=origin_a, cookies={})
    assert status == 200
    assert "refresh_token" not in login
    assert set(cookies) == {REFRESH_COOKIE, CSRF_COOKIE}
    refresh = cookies[REFRESH_COOKIE]
    assert (refresh["HttpOnly"], refresh["Secure"], refresh["SameSite"]) == (True, True, "Strict")
    assert refresh["Path"] == "/auth"
    assert refresh["Max-Age"] == str(login["refresh_token_expires_in"])
    jar = {name: cookie.value for name, cookie in cookies.items()}
    csrf = jar[CSRF_COOKIE]

    # Another host, its own origin: the session goes on, the CSRF token verifies.
    seen: set[str] = set()
    for port, origin in [(b.port, origin_b), (a.port, origin_a), (b.port, origin_b)]:
        status, body, cookies = post(
            port, "/auth/refresh-token", origin=origin, cookies=jar, csrf=csrf
        )
        assert status == 200, body
        assert "refresh_token" not in body
        assert cookies[CSRF_COOKIE].value == csrf
        seen.add(jar[REFRESH_COOKIE])
        jar[REFRESH_COOKIE] = cookies[REFRESH_COOKIE].value
    assert jar[REFRESH_COOKIE] not in seen

    # Another server's origin is a foreign one to this server (the ports differ).
    status, body, cookies = post(
        a.port, "/auth/refresh-token", origin=origin_b, cookies=jar, csrf=csrf
    )
    assert (status, body["error"], cookies) == (403, "csrf_failed", {})
    # Without Origin the cookies are ignored: JSON transport wants a body.
    status, body, cookies = post(b.port, "/auth/refresh-token", origin=None, cookies=jar, csrf=csrf)
    assert (status, body["error"], cookies) == (400, "invalid_request", {})

    # A consumed cookie replayed: the session is revoked and the cookies cleared.
    old = {**jar, REFRESH_COOKIE: sorted(seen)[0]}
    status, body, cookies = post(
        a.port, "/auth/refresh-token", origin=origin_a, cookies=old, csrf=csrf
    )
    assert (status, body["error"]) == (401, "refresh_token_reused")
    assert {name: (c.value, c["Max-Age"]) for name, c in cookies.items()} == {
        REFRESH_COOKIE: ("", "0"),
        CSRF_COOKIE: ("", "0"),
    }
    status, body, _ = post(b.port, "/auth/refresh-token", origin=origin_b, cookies=jar, csrf=csrf)
    assert (status, body["error"]) == (401, "invalid_refresh_token")

"""Fixtures of the browser tests: Debian's Chromium driven by Playwright, real servers.

One Chromium per module (``browser``), launched from the ``chromium`` on
``PATH`` (never a downloaded build), and the servers of the module, each a
real werkzeug server in a thread of this process, so that a test can read the
token tables and what each server answered:

- ``api``: the example shop (``examples/shop.py``: cookie mode, the browser
  page) on ``http://localhost:<port>``, with Flask-CORS for the SPA origins;
- ``api_samesite_none``: the same with ``SameSite=None`` cookies, so that a
  cross-site form does carry the cookies to the server;
- ``spa`` / ``spa_untrusted``: the same page served from two other origins
  (``http://localhost:<port>``), the first in
  ``COCART_JWT_CSRF_TRUSTED_ORIGINS``, the second only allowed by CORS;
- ``attacker``: pages on ``http://127.0.0.1:<port>``, another *site* to the
  browser, that post forms and ``fetch`` to the API.

Without ``chromium`` or Playwright the tests skip with the reason, except in
CI (``CI=true``), where that is a failure.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from flask import Flask, Response, request
from flask_cors import CORS
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from examples.shop import BROWSER_FILES, init_db
from examples.shop import create_app as create_shop
from flask_cocart_jwt import signals
from tests.conftest import IN_CI, SECRET
from tests.support import close_app

#: Seconds Playwright waits for a page to reach an expected state (a loaded
#: two-core machine is slow, never wrong).
TIMEOUT_MS = 20_000


def _require(what: str, found: object) -> None:
    if not found:
        reason = f"the browser tests need {what}"
        if IN_CI:
            pytest.fail(f"CI runs the browser tests: {reason}")
        pytest.skip(reason)


@pytest.fixture(scope="module")
def chromium_executable() -> str:
    """The path of Debian's ``chromium``."""
    executable = shutil.which("chromium")
    _require("Debian's chromium on PATH (apt-get install -y chromium)", executable)
    assert executable is not None
    return executable


@pytest.fixture(scope="module")
def browser(chromium_executable: str) -> Iterator[Any]:
    """Debian's Chromium, headless, driven by Playwright; one launch per module."""
    executable = chromium_executable
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - the dev extra installs it
        _require("Playwright for Python (pip install -e '.[dev]')", False)
        raise
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    """A fresh browser context (an empty cookie jar), closed afterwards."""
    ctx = browser.new_context()
    ctx.set_default_timeout(TIMEOUT_MS)
    try:
        yield ctx
    finally:
        ctx.close()


# -- servers ---------------------------------------------------------------------


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


@dataclass
class Server:
    """A werkzeug server in a thread of this process."""

    app: Flask
    host: str
    server: BaseWSGIServer = field(repr=False)

    @property
    def origin(self) -> str:
        return f"http://{self.host}:{self.server.server_port}"

    def url(self, path: str = "/") -> str:
        return self.origin + path


@dataclass
class Api(Server):
    """The shop API, with what it answered and whether each refresh rotated."""

    #: ``(path, status, Origin, names of the cookies received)`` per request
    #: (CORS preflights left out).
    log: list[tuple[str, int, str | None, list[str]]] = field(default_factory=list)
    #: ``rotated`` of each ``token_refreshed`` signal.
    rotations: list[bool] = field(default_factory=list)

    def answers(self, path: str) -> list[tuple[int, str | None, list[str]]]:
        """What the API answered on ``path``: ``(status, Origin, cookies)``."""
        return [(status, origin, names) for p, status, origin, names in self.log if p == path]

    def reset(self) -> None:
        self.log.clear()
        self.rotations.clear()


def _start(app: Flask, host: str) -> BaseWSGIServer:
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_QuietHandler)
    threading.Thread(target=server.serve_forever, name=f"server-{app.name}", daemon=True).start()
    return server


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Server]]:
    """Every server of the module, by name (see the module docstring)."""
    started: list[BaseWSGIServer] = []
    apis: list[Flask] = []
    spa_config: dict[str, str] = {}

    def start(app: Flask, host: str = "localhost") -> BaseWSGIServer:
        server = _start(app, host)
        started.append(server)
        return server

    spa_app = _spa_app(spa_config)
    spa = Server(spa_app, "localhost", start(spa_app))
    spa_untrusted = Server(spa_app, "localhost", start(spa_app))
    found: dict[str, Server] = {"spa": spa, "spa_untrusted": spa_untrusted}
    for name, samesite in (("api", "Strict"), ("api_samesite_none", "None")):
        folder = tmp_path_factory.mktemp(name)
        app = create_shop(
            {
                "SQLALCHEMY_DATABASE_URI": f"sqlite:///{folder / 'shop.sqlite3'}",
                "COCART_JWT_SECRET_KEY": SECRET,
                "COCART_JWT_RATELIMIT_ENABLED": False,
                "COCART_JWT_COOKIE_SAMESITE": samesite,
                "COCART_JWT_CSRF_TRUSTED_ORIGINS": (spa.origin,),
            }
        )
        with app.app_context():
            init_db()  # the shop's init step: its tables and the demo user
        # An SPA on another origin: Flask-CORS with exact origins and credentials.
        CORS(app, origins=[spa.origin, spa_untrusted.origin], supports_credentials=True)
        apis.append(app)
        api = Api(app, "localhost", start(app))
        _record(api)
        found[name] = api
    spa_config["api"] = found["api"].origin
    attacker_app = _attacker_app(found["api"].origin, found["api_samesite_none"].origin)
    found["attacker"] = Server(attacker_app, "127.0.0.1", start(attacker_app))
    try:
        yield found
    finally:
        for server in started:
            server.shutdown()
            server.server_close()
        for app in apis:
            close_app(app)


def _record(api: Api) -> None:
    @api.app.after_request
    def record(response: Response) -> Response:
        if request.method != "OPTIONS":
            origin = request.headers.get("Origin")
            api.log.append((request.path, response.status_code, origin, sorted(request.cookies)))
        return response

    def refreshed(_sender: Flask, *, rotated: bool, **_kwargs: Any) -> None:
        api.rotations.append(rotated)

    signals.token_refreshed.connect(refreshed, api.app, weak=False)


def _spa_app(config: dict[str, str]) -> Flask:
    """The shop's page, as a static SPA whose API is on another origin."""
    app = Flask("spa")

    @app.get("/")
    def page() -> Response:
        html = (BROWSER_FILES["index.html"] / "index.html").read_text(encoding="utf-8")
        html = html.replace('content=""', f'content="{config["api"]}"', 1)
        return Response(html, mimetype="text/html")

    @app.get("/<any('shop.mjs', 'client.mjs'):name>")
    def script(name: str) -> Response:
        return Response((BROWSER_FILES[name] / name).read_bytes(), mimetype="text/javascript")

    return app


def _attacker_app(api: str, api_samesite_none: str) -> Flask:
    """Pages of another site that try to use the API's cookies."""
    app = Flask("attacker")
    targets = {"strict": api, "none": api_samesite_none}

    @app.get("/<any('strict', 'none'):target>/form/<any('refresh-token', 'revoke'):route>")
    def form(target: str, route: str) -> Response:
        # The classic CSRF: a form that submits itself on load (a top-level POST).
        action = f"{targets[target]}/auth/{route}"
        return Response(
            f'<form id="f" method="post" action="{action}">'
            '<input type="hidden" name="refresh_token" value="x"></form>'
            "<script>document.getElementById('f').submit()</script>",
            mimetype="text/html",
        )

    @app.get("/<any('strict', 'none'):target>/fetch")
    def fetch(target: str) -> Response:
        # fetch() with credentials, to both routes; the answers are opaque to it.
        base = f"{targets[target]}/auth"
        return Response(
            "<p id='done'></p><script>"
            "const post = (route) => fetch("
            f"'{base}/' + route, {{method: 'POST', credentials: 'include', mode: 'no-cors',"
            " headers: {'Content-Type': 'text/plain'}, body: '{}'});"
            "Promise.allSettled([post('refresh-token'), post('revoke')])"
            ".then(() => { document.getElementById('done').textContent = 'done'; });"
            "</script>",
            mimetype="text/html",
        )

    return app


@pytest.fixture
def api(servers: dict[str, Server]) -> Api:
    """The shop API (SameSite=Strict), its log emptied."""
    found = servers["api"]
    assert isinstance(found, Api)
    found.reset()
    return found

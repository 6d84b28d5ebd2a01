"""The apps gunicorn serves in the integration tests.

``gunicorn 'tests.integration.wsgi:create_app()'`` builds the example shop in
each worker (no ``--preload``) and adds one response header, ``X-Worker-Pid``,
so that the tests can tell which worker answered and check that every worker
saw what they expect; with ``FLASK_TEST_PROXY_FIX=N`` the app sits behind
Werkzeug's ``ProxyFix`` trusting ``N`` proxies, as a deployment behind nginx
would. Everything else is the example, configured through ``FLASK_*``
environment variables. Like the example, it never touches the database when
it starts: the tests run the shop's init step (``flask init-db``) once before
the workers start (``servers.init_database``).

``gunicorn 'tests.integration.wsgi:create_embedded_app()'`` serves the minimal
example instead, whose tokens live in the extension's own database
(``FLASK_COCART_JWT_DATABASE_URI``): the extension creates its tables there
on first use, in whichever workers come first.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from typing import Any

from flask import Config, Flask, jsonify
from werkzeug.middleware.proxy_fix import ProxyFix

from examples import minimal, shop

StartResponse = Callable[..., Any]


def create_app() -> Flask:
    """The example shop, with its answers tagged by worker pid.

    ``FLASK_TEST_REFRESH_DELAY`` (seconds) holds every refresh answer back
    after the view ran (the rotation is committed, the response not yet
    sent), so that a test can kill a worker with a request surely in flight.
    ``FLASK_TEST_PROXY_FIX`` (a number of proxies) takes the client address
    from ``X-Forwarded-For`` through ``ProxyFix``.
    ``FLASK_TEST_REVOCATION_POLL_INTERVAL`` (seconds) sets how often the
    workers poll for revocations (and lets the view go that long unsynced
    before a request reads the database itself), and
    ``GET /test/revocation-push`` says whether the answering worker receives
    them by push right now.
    """
    app = shop.create_app()
    revocations = shop.cocart_jwt.get_service(app).revocations
    poll = app.config.get("TEST_REVOCATION_POLL_INTERVAL")
    if poll is not None and revocations is not None:
        revocations.poll_interval = revocations.max_staleness = float(poll)

    @app.get("/test/revocation-push")
    def revocation_push() -> Any:
        return jsonify(pushing=revocations is not None and revocations.pushing)

    proxies = int(app.config.get("TEST_PROXY_FIX", 0))
    if proxies:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies)  # type: ignore[method-assign]
    _tag(app, delay=float(app.config.get("TEST_REFRESH_DELAY", 0)))
    return app


def create_embedded_app() -> Flask:
    """The minimal example (user ``alice``), configured from ``FLASK_*``
    variables, with ``GET /ready``, which needs no database, for the
    readiness poll; answers tagged by worker pid."""
    config = Config(os.getcwd())
    config.from_prefixed_env()
    app = minimal.create_app(dict(config))

    @app.get("/ready")
    def ready() -> Any:
        return jsonify(ready=True)

    _tag(app)
    return app


def _tag(app: Flask, delay: float = 0.0) -> None:
    """Add ``X-Worker-Pid`` to every answer; hold refresh answers ``delay`` seconds."""
    inner = app.wsgi_app

    def tagged(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            headers.append(("X-Worker-Pid", str(os.getpid())))
            if delay and environ.get("PATH_INFO", "").endswith("/refresh-token"):
                time.sleep(delay)
            return start_response(status, headers, exc_info)

        return inner(environ, start)

    app.wsgi_app = tagged  # type: ignore[method-assign]

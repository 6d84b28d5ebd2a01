"""The shop example as gunicorn serves it in the integration tests.

``gunicorn 'tests.integration.wsgi:create_app()'`` builds the example's app in
each worker (no ``--preload``) and adds one response header, ``X-Worker-Pid``,
so that the tests can tell which worker answered and check that every worker
saw what they expect. Everything else is the example, configured through
``FLASK_*`` environment variables.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask

from examples import shop

StartResponse = Callable[..., Any]


def create_app() -> Flask:
    """The example shop, with its answers tagged by worker pid."""
    app = shop.create_app()
    inner = app.wsgi_app

    def tagged(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            headers.append(("X-Worker-Pid", str(os.getpid())))
            return start_response(status, headers, exc_info)

        return inner(environ, start)

    app.wsgi_app = tagged  # type: ignore[method-assign]
    return app

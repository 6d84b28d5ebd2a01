"""The tiny app ``benchmarks/run.py`` serves under gunicorn.

Two JSON routes that differ only by authentication: ``GET /bare`` and
``GET /protected`` behind :func:`~flask_cocart_jwt.jwt_required` (revocation
check on, rate limits off). Configured through ``FLASK_*`` environment
variables (``FLASK_COCART_JWT_SECRET_KEY``, ``FLASK_COCART_JWT_DATABASE_URI``),
as a deployment would be::

    gunicorn --workers 2 'benchmarks.http_app:create_app()'

Every answer carries ``X-Worker-Pid``, which the readiness poll of
``tests/integration/servers.py`` uses to see every worker answer.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, jsonify

from flask_cocart_jwt import CoCartJWT, jwt_required


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the benchmark app.

    :param config: settings applied after the ``FLASK_*`` environment.
    """
    app = Flask(__name__)
    app.config.update(
        COCART_JWT_REVOCATION_CHECK=True,
        COCART_JWT_RATELIMIT_ENABLED=False,
    )
    app.config.from_prefixed_env()
    app.config.update(config or {})
    CoCartJWT(app)
    pid = str(os.getpid())

    @app.after_request
    def tag(response: Response) -> Response:
        response.headers["X-Worker-Pid"] = pid
        return response

    @app.get("/bare")
    def bare() -> Any:
        return jsonify(ok=True)

    @app.get("/protected")
    @jwt_required
    def protected() -> Any:
        return jsonify(ok=True)

    return app

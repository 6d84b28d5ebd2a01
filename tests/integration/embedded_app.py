"""An app on the extension's own database, as gunicorn serves it in the timeout tests.

``gunicorn 'tests.integration.embedded_app:create_app()'``: no ``db`` of the
app's own, so the token tables live in :data:`COCART_JWT_DATABASE_URI` and the
extension builds the engine (with :data:`COCART_JWT_DATABASE_TIMEOUT`). The
users are in memory, so that only the extension talks to the database:

- ``GET /health`` needs no database;
- ``GET /me`` is protected: the token and the revocation check, in memory;
- the token routes need the database.

Configured through ``FLASK_*`` environment variables; answers carry
``X-Worker-Pid``.
"""

from __future__ import annotations

import os
from typing import Any

from flask import Flask, jsonify

from flask_cocart_jwt import CoCartJWT, get_jwt_identity, jwt_required
from tests.integration.servers import DEMO

cocart_jwt = CoCartJWT()


@cocart_jwt.credentials_checker
def check_credentials(username: str, password: str) -> str | None:
    return username if (username, password) == (DEMO["username"], DEMO["password"]) else None


def create_app() -> Flask:
    """The app, configured from ``FLASK_*`` variables."""
    app = Flask(__name__)
    app.config.from_prefixed_env()
    cocart_jwt.init_app(app)

    @app.get("/health")
    def health() -> Any:
        return jsonify(ok=True)

    @app.get("/me")
    @jwt_required
    def me() -> Any:
        return jsonify(identity=get_jwt_identity())

    @app.after_request
    def tag(response: Any) -> Any:
        response.headers["X-Worker-Pid"] = str(os.getpid())
        return response

    return app

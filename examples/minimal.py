"""The smallest useful app: one file, users in a dict, tokens on the embedded SQLite.

Run it with ``flask --app examples.minimal run`` and log in as ``alice`` /
``correct horse battery staple``. The secret comes from ``JWT_SECRET`` (a
random one is made per start otherwise, which logs everyone out on restart).
"""

from __future__ import annotations

import os
import secrets
from typing import Any

from flask import Flask, jsonify
from werkzeug.security import check_password_hash, generate_password_hash

from flask_cocart_jwt import CoCartJWT, get_jwt_identity, jwt_required

USERS = {"alice": generate_password_hash("correct horse battery staple")}

cocart_jwt = CoCartJWT()


@cocart_jwt.credentials_checker
def check(username: str, password: str) -> str | None:
    hashed = USERS.get(username)
    if hashed is None or not check_password_hash(hashed, password):
        return None
    return username  # the identity is str(user): the username


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the app; ``config`` overrides the defaults."""
    app = Flask(__name__)
    app.config["COCART_JWT_SECRET_KEY"] = os.environ.get("JWT_SECRET") or secrets.token_urlsafe(64)
    app.config.update(config or {})
    cocart_jwt.init_app(app)

    @app.get("/hello")
    @jwt_required
    def hello() -> Any:
        return jsonify(message=f"Hello, {get_jwt_identity()}!")

    return app

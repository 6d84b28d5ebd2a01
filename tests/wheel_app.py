"""A tiny app run by ``tests/test_dist.py`` in a fresh venv with only the built wheel.

Not a test module: it runs under ``python -I`` in that venv, far from the
repository, and prints one JSON object of what it found (where the package
was imported from, its data files, the ``flask jwt`` entry point, and the
answers of a login and a protected route), for the test to check.

Usage: ``python -I wheel_app.py INSTANCE_DIR``.
"""

from __future__ import annotations

import json
import sys
from importlib import metadata, resources
from typing import Any

from flask import Flask, jsonify

import flask_cocart_jwt
from flask_cocart_jwt import CoCartJWT, get_jwt_identity, jwt_required

SECRET = "wheel-secret-0123456789-abcdefghijklmnopqrstuvwxyz"
PASSWORD = "correct horse battery staple"


def create_app(instance_path: str) -> Flask:
    """One user, tokens on the embedded SQLite default in ``instance_path``."""
    cocart_jwt = CoCartJWT()

    @cocart_jwt.credentials_checker
    def check(username: str, password: str) -> str | None:
        return username if (username, password) == ("alice", PASSWORD) else None

    app = Flask(__name__, instance_path=instance_path)
    app.config["COCART_JWT_SECRET_KEY"] = SECRET
    cocart_jwt.init_app(app)

    @app.get("/me")
    @jwt_required
    def me() -> Any:
        return jsonify(user=get_jwt_identity())

    return app


def main(instance_path: str) -> dict[str, Any]:
    """What the installed package offers, and what the tiny app answers."""
    package = resources.files("flask_cocart_jwt")
    openapi = json.loads((package / "openapi.json").read_text("utf-8"))
    (command,) = [e for e in metadata.entry_points(group="flask.commands") if e.name == "jwt"]
    client = create_app(instance_path).test_client()
    login = client.post("/auth/login", json={"username": "alice", "password": PASSWORD})
    token = (login.json or {}).get("access_token", "")
    me = client.get("/me", headers={"Authorization": f"Bearer {token}"})
    return {
        "module": flask_cocart_jwt.__file__,
        "version": metadata.version("Flask-CoCart-JWT"),
        "py_typed": (package / "py.typed").is_file(),
        "openapi_paths": sorted(openapi["paths"]),
        "entry_point": command.value,
        "entry_point_loads": command.load().name,
        "login": login.status_code,
        "me": [me.status_code, me.json],
        "anonymous": client.get("/me").status_code,
    }


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1])))

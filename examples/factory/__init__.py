"""An app factory with Flask-SQLAlchemy, Flask-Migrate and ``watch_user_model``.

The token tables join the app's own metadata (``CoCartJWT(db=db)``), so
``flask --app examples.factory db migrate`` puts them in the migration next
to the ``user`` table. Changing a user's password or email, or deleting the
user, revokes all their sessions in the same transaction.

::

    flask --app examples.factory db init      # once
    flask --app examples.factory db migrate -m "users and tokens"
    flask --app examples.factory db upgrade
    flask --app examples.factory run
"""

from __future__ import annotations

import os
from typing import Any

from flask import Flask, jsonify
from flask_migrate import Migrate

from flask_cocart_jwt import CoCartJWT, current_user, jwt_required

from .models import User, db

cocart_jwt = CoCartJWT(db=db)
migrate = Migrate()

# A password or email change, or deleting the row, logs the user out everywhere.
cocart_jwt.watch_user_model(User, revoke_on=("password_hash", "email"))


@cocart_jwt.credentials_checker
def check_credentials(username: str, password: str) -> User | None:
    return User.authenticate(username, password)


@cocart_jwt.user_loader
def load_user(identity: str) -> User | None:
    return db.session.get(User, int(identity)) if identity.isdigit() else None


@cocart_jwt.additional_claims_loader
def claims(user: User) -> dict[str, Any]:
    return {"roles": ["admin"] if user.is_admin else []}


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the app: extensions first, then ``cocart_jwt`` (after ``db``)."""
    app = Flask(__name__, instance_relative_config=True)
    app.config.update(
        SQLALCHEMY_DATABASE_URI=os.environ.get(
            "DATABASE_URL", "sqlite:///" + os.path.join(app.instance_path, "factory.sqlite3")
        ),
        COCART_JWT_SECRET_KEY=os.environ.get("JWT_SECRET"),
    )
    app.config.update(config or {})
    os.makedirs(app.instance_path, exist_ok=True)
    db.init_app(app)
    migrate.init_app(app, db)
    cocart_jwt.init_app(app)

    @app.get("/me")
    @jwt_required
    def me() -> Any:
        return jsonify(id=current_user.id, username=current_user.username)

    return app

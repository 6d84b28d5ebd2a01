"""A small shop-style JSON API protected by Flask-CoCart-JWT.

Runs with zero setup: ``make demo``, which runs these two commands::

    flask --app examples.shop:create_app init-db   # once: tables and the demo user
    flask --app examples.shop:create_app run

The users and the token tables live in one SQLite file in the instance folder
(``FLASK_SQLALCHEMY_DATABASE_URI`` moves them). ``init-db`` creates the tables
and a demo user ``demo`` / ``demo-password``; ``create_app()`` never touches the
database, so any number of workers can start at once, even while the database
is down. The JWT secret is read from ``SHOP_JWT_SECRET`` or generated once into
the instance folder.

Try it::

    curl -s -X POST localhost:5000/auth/login -H 'Content-Type: application/json' \\
         -d '{"username": "demo", "password": "demo-password"}'
    curl -s localhost:5000/cart -H "Authorization: Bearer <access_token>"

or open http://localhost:5000/ in a browser: a small page (``examples/browser``)
logs in with cookie mode (``COCART_JWT_COOKIE_MODE``), so that a reload, or a
browser restart, keeps you logged in while no script can read the refresh
token. curl and other clients without an ``Origin`` header keep JSON transport.
``/?dpop=1`` adds DPoP (``COCART_JWT_DPOP = "optional"``): the page signs
every request with a key that no script can export, and the session is bound
to it; ``/?dpop=1&cookies=0`` does the same with the tokens in the page's
memory (JSON transport) instead of the cookie.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from pathlib import Path
from typing import Any

import click
from flask import Flask, Response, abort, jsonify, request
from flask.cli import with_appcontext
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import ForeignKey, String
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from werkzeug.security import check_password_hash, generate_password_hash

from flask_cocart_jwt import CoCartJWT, current_user, jwt_required


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)
cocart_jwt = CoCartJWT(db=db)

PRODUCTS = {
    1: {"id": 1, "name": "Coffee beans", "price": 1200},
    2: {"id": 2, "name": "Grinder", "price": 8900},
    3: {"id": 3, "name": "Mug", "price": 900},
}
#: The browser page and its scripts (the client is shared with Node, in ``js/``).
BROWSER_FILES = {
    "index.html": Path(__file__).parent / "browser",
    "shop.mjs": Path(__file__).parent / "browser",
    "client.mjs": Path(__file__).parent / "js",
}
#: The page runs only its own scripts: an injected inline script does not run.
PAGE_CSP = "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
# Checked when the username is unknown, so both failures take the same time.
_DUMMY_HASH = generate_password_hash("not-a-real-password")


class User(db.Model):  # type: ignore[name-defined,misc]
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    email: Mapped[str] = mapped_column(String(255))
    password_hash: Mapped[str] = mapped_column(String(255))


# A password or email change, or deleting the user, logs them out everywhere.
cocart_jwt.watch_user_model(User)


class CartItem(db.Model):  # type: ignore[name-defined,misc]
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id"))
    product_id: Mapped[int]
    quantity: Mapped[int]


@cocart_jwt.credentials_checker
def check_credentials(username: str, password: str) -> User | None:
    user = db.session.execute(db.select(User).filter_by(username=username)).scalar_one_or_none()
    if user is None:
        check_password_hash(_DUMMY_HASH, password)
        return None
    return user if check_password_hash(user.password_hash, password) else None


@cocart_jwt.user_loader
def load_user(identity: str) -> User | None:
    return db.session.get(User, int(identity)) if identity.isdigit() else None


@cocart_jwt.login_response_loader
def login_extra(user: User) -> dict[str, Any]:
    return {"user": {"id": user.id, "username": user.username}}


def init_db() -> None:
    """Create the tables (the shop's and the token tables) and the demo user, if missing."""
    db.create_all()
    if db.session.execute(db.select(User).filter_by(username="demo")).first() is None:
        db.session.add(
            User(
                username="demo",
                email="demo@example.com",
                password_hash=generate_password_hash("demo-password"),
            )
        )
        db.session.commit()


@click.command("init-db")
@with_appcontext
def init_db_command() -> None:
    """Create the database tables and the demo user. Run it once, before serving."""
    init_db()
    click.echo("Initialised the database (demo user: demo / demo-password).")


def _secret(app: Flask) -> str:
    secret = os.environ.get("SHOP_JWT_SECRET")
    if secret:
        return secret
    path = os.path.join(app.instance_path, "jwt-secret")
    if not os.path.exists(path):
        # Written aside, then linked into place: of several workers starting at
        # once, the first one's secret wins and every one reads that one.
        fd, draft = tempfile.mkstemp(dir=app.instance_path)  # mode 0o600
        try:
            with open(fd, "w") as f:
                f.write(secrets.token_urlsafe(64))
            with contextlib.suppress(FileExistsError):
                os.link(draft, path)
        finally:
            os.unlink(draft)
    with open(path) as f:
        return f.read().strip()


def _browser_file(name: str) -> Response:
    """A file of the browser page, with a strict Content-Security-Policy."""
    mimetype = "text/html" if name.endswith(".html") else "text/javascript"
    response = Response((BROWSER_FILES[name] / name).read_bytes(), mimetype=mimetype)
    response.headers["Content-Security-Policy"] = PAGE_CSP
    response.headers["Cache-Control"] = "no-cache"
    return response


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the shop app. ``config`` overrides the defaults (used by the tests).

    It never touches the database: ``flask --app examples.shop:create_app
    init-db`` creates the tables and the demo user, once, before serving.
    """
    app = Flask(__name__, instance_relative_config=True)
    os.makedirs(app.instance_path, exist_ok=True)
    app.config.update(
        SQLALCHEMY_DATABASE_URI="sqlite:///" + os.path.join(app.instance_path, "shop.sqlite3"),
        # Browsers (requests with Origin) get the refresh token in an HttpOnly
        # cookie, CSRF-checked; other clients keep JSON transport.
        COCART_JWT_COOKIE_MODE=True,
        # A client that sends DPoP proofs gets tokens bound to its key (RFC 9449).
        COCART_JWT_DPOP="optional",
    )
    # Deployment settings come from FLASK_* environment variables, e.g.
    # FLASK_SQLALCHEMY_DATABASE_URI or FLASK_COCART_JWT_RATELIMIT_STORAGE_URI.
    app.config.from_prefixed_env()
    app.config.update(config or {})
    if not app.config.get("COCART_JWT_SECRET_KEY"):
        app.config["COCART_JWT_SECRET_KEY"] = _secret(app)
    db.init_app(app)
    cocart_jwt.init_app(app)
    app.cli.add_command(init_db_command)

    @app.get("/")
    def page() -> Response:
        return _browser_file("index.html")

    @app.get("/<any('shop.mjs', 'client.mjs'):name>")
    def script(name: str) -> Response:
        return _browser_file(name)

    @app.get("/products")
    def products() -> Any:
        return jsonify(products=list(PRODUCTS.values()))

    @app.post("/signup")
    def signup() -> Any:
        body = request.get_json(silent=True)
        username = body.get("username") if isinstance(body, dict) else None
        password = body.get("password") if isinstance(body, dict) else None
        if not isinstance(username, str) or not 0 < len(username) <= 80:
            return jsonify(error="invalid_request", message="username must be 1 to 80 chars."), 400
        if not isinstance(password, str) or not 12 <= len(password) <= 1024:
            return jsonify(error="invalid_request", message="password must be 12+ chars."), 400
        user = User(username=username, email="", password_hash=generate_password_hash(password))
        db.session.add(user)
        try:
            db.session.commit()
        except IntegrityError:  # the username is taken
            db.session.rollback()
            return jsonify(error="conflict", message="That username is taken."), 409
        # Log the new user in: the same body and no-store headers as POST /auth/login.
        return cocart_jwt.issue_tokens(user).to_response(201, extra=login_extra(user))

    @app.get("/cart")
    @jwt_required
    def cart() -> Any:
        items = db.session.execute(db.select(CartItem).filter_by(user_id=current_user.id)).scalars()
        return jsonify(items=[{"product_id": i.product_id, "quantity": i.quantity} for i in items])

    @app.post("/cart")
    @jwt_required
    def add_to_cart() -> Any:
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or body.get("product_id") not in PRODUCTS:
            return jsonify(error="invalid_request", message="Unknown product_id."), 400
        quantity = body.get("quantity", 1)
        if not isinstance(quantity, int) or isinstance(quantity, bool) or not 0 < quantity <= 99:
            return jsonify(error="invalid_request", message="quantity must be 1 to 99."), 400
        db.session.add(
            CartItem(user_id=current_user.id, product_id=body["product_id"], quantity=quantity)
        )
        db.session.commit()
        return jsonify(added=True), 201

    @app.post("/account/password")
    @jwt_required(fresh=True)
    def change_password() -> Any:
        body = request.get_json(silent=True) or {}
        new = body.get("new_password") if isinstance(body, dict) else None
        if not isinstance(new, str) or not 12 <= len(new) <= 1024:
            abort(400)
        current_user.password_hash = generate_password_hash(new)
        db.session.commit()  # watch_user_model logs the user out everywhere
        return jsonify(changed=True)

    return app

"""The examples run as documented: the shop, the minimal and the factory apps,
and the JavaScript client."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from werkzeug.serving import make_server

from examples import factory, minimal
from examples import shop as shop_module
from examples.shop import create_app
from tests.conftest import SECRET, assert_error, closed_port

REPO = Path(__file__).resolve().parent.parent
#: The password of the minimal and factory examples' users.
PASSWORD = "correct horse battery staple"


# -- the shop (examples/shop) --------------------------------------------------


@pytest.fixture
def shop(tmp_path: Any) -> Flask:
    app = create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'shop.sqlite3'}",
            "COCART_JWT_SECRET_KEY": SECRET,
        }
    )
    result = app.test_cli_runner().invoke(args=["init-db"])
    assert result.exit_code == 0, result.output
    return app


def _login(client: Any, password: str = "demo-password") -> Any:
    return client.post("/auth/login", json={"username": "demo", "password": password})


def test_shop_readme_flow(shop: Flask) -> None:
    client = shop.test_client()
    assert client.get("/products").status_code == 200
    assert_error(client.get("/cart"), 401, "missing_token")
    login = _login(client)
    assert login.status_code == 200
    assert login.json["user"]["username"] == "demo"
    bearer = {"Authorization": f"Bearer {login.json['access_token']}"}
    added = client.post("/cart", json={"product_id": 2, "quantity": 1}, headers=bearer)
    assert added.status_code == 201
    cart = client.get("/cart", headers=bearer)
    assert cart.json == {"items": [{"product_id": 2, "quantity": 1}]}


def test_shop_serves_the_browser_page(shop: Flask) -> None:
    """``make demo``'s page: the HTML and its two module scripts, under a strict CSP."""
    client = shop.test_client()
    page = client.get("/")
    assert page.status_code == 200
    assert page.mimetype == "text/html"
    assert b'<form id="login"' in page.data
    assert page.headers["Content-Security-Policy"].startswith("default-src 'self'")
    for name in ("shop.mjs", "client.mjs"):
        script = client.get(f"/{name}")
        assert script.status_code == 200
        assert script.mimetype == "text/javascript"
        assert "Content-Security-Policy" in script.headers
    # Cookie mode unless ?cookies=0; DPoP with ?dpop=1.
    script = client.get("/shop.mjs").data
    assert b'const cookies = params.get("cookies") !== "0";' in script
    assert b"new AuthClient(apiBase, { cookies, dpop," in script
    assert client.get("/conftest.py").status_code == 404


def test_shop_runs_in_cookie_mode(shop: Flask) -> None:
    """Browsers get the refresh cookie; the README's curl (no Origin) gets JSON."""
    client = shop.test_client()
    browser = client.post(
        "/auth/login",
        json={"username": "demo", "password": "demo-password"},
        headers={"Origin": "http://localhost"},
    )
    assert "refresh_token" not in browser.json
    assert client.get_cookie("__Secure-cocart_rt", path="/auth") is not None
    assert "refresh_token" in _login(client).json


def test_shop_wrong_password(shop: Flask) -> None:
    assert_error(_login(shop.test_client(), "nope"), 401, "invalid_credentials")


def test_shop_password_change_logs_out_everywhere(shop: Flask) -> None:
    client = shop.test_client()
    first = _login(client).json
    second = _login(client).json
    bearer = {"Authorization": f"Bearer {first['access_token']}"}
    changed = client.post(
        "/account/password", json={"new_password": "a-much-better-password"}, headers=bearer
    )
    assert changed.status_code == 200
    other = {"Authorization": f"Bearer {second['access_token']}"}
    assert_error(client.get("/cart", headers=other), 401, "session_revoked")
    refresh = client.post("/auth/refresh-token", json={"refresh_token": second["refresh_token"]})
    assert_error(refresh, 401, "invalid_refresh_token")
    assert _login(client, "a-much-better-password").status_code == 200


def test_shop_signup_uses_the_token_response(shop: Flask) -> None:
    """The quick start's sign-up example (examples/shop.py) answers like a login."""
    client = shop.test_client()
    signup = client.post("/signup", json={"username": "ada", "password": "analytical-engine"})
    assert signup.status_code == 201, signup.json
    assert signup.headers["Cache-Control"] == "no-store"
    assert signup.headers["Pragma"] == "no-cache"
    login = client.post("/auth/login", json={"username": "ada", "password": "analytical-engine"})
    assert list(json.loads(signup.get_data())) == list(json.loads(login.get_data()))
    assert signup.json["user"]["username"] == "ada"
    bearer = {"Authorization": f"Bearer {signup.json['access_token']}"}
    assert client.get("/cart", headers=bearer).json == {"items": []}
    refreshed = client.post(
        "/auth/refresh-token", json={"refresh_token": signup.json["refresh_token"]}
    )
    assert refreshed.status_code == 200

    taken = client.post("/signup", json={"username": "ada", "password": "another-password"})
    assert taken.status_code == 409
    for body in ({}, {"username": "bob"}, {"username": "bob", "password": "short"}, []):
        assert client.post("/signup", json=body).status_code == 400


def test_quickstart_shows_the_signup_example() -> None:
    quickstart = (REPO / "docs" / "quickstart.rst").read_text()
    assert ".. literalinclude:: ../examples/shop.py" in quickstart
    assert ':start-at: @app.post("/signup")' in quickstart
    shop_source = (REPO / "examples" / "shop.py").read_text()
    example = shop_source[shop_source.index('@app.post("/signup")') :]
    example = example[: example.index('@app.get("/cart")')]
    assert ".to_response(201" in example


def test_shop_create_app_never_touches_the_database() -> None:
    """A worker starts, and serves what needs no database, while the database
    is down; only the routes that need it answer 503 (as they would in a
    running worker)."""
    app = create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": f"postgresql+psycopg://nobody@127.0.0.1:{closed_port()}/shop",
            "COCART_JWT_SECRET_KEY": SECRET,
        }
    )
    client = app.test_client()
    assert client.get("/products").status_code == 200
    assert_error(_login(client), 503, "service_unavailable")


def test_shop_init_db_runs_once_or_again(tmp_path: Path) -> None:
    """The documented command, as ``make demo`` runs it: the tables and one
    demo user, however many times it runs."""
    database = tmp_path / "shop.sqlite3"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("FLASK_")},
        "FLASK_SQLALCHEMY_DATABASE_URI": f"sqlite:///{database}",
        "SHOP_JWT_SECRET": SECRET,
    }
    flask = Path(sys.executable).with_name("flask")
    command = [str(flask), "--app", "examples.shop:create_app", "init-db"]
    for _ in range(2):
        subprocess.run(command, cwd=REPO, env=env, check=True, capture_output=True, timeout=60)  # noqa: S603
    engine = sa.create_engine(f"sqlite:///{database}")
    try:
        with engine.connect() as conn:
            tables = set(sa.inspect(conn).get_table_names())
            users = conn.execute(sa.text("SELECT username FROM user")).scalars().all()
    finally:
        engine.dispose()
    assert {"user", "cart_item", "cocart_jwt_sessions", "cocart_jwt_refresh_tokens"} <= tables
    assert users == ["demo"]


def test_shop_workers_starting_together_share_one_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without ``SHOP_JWT_SECRET`` the secret is made once in the instance
    folder. A worker that looked for it before another one wrote it keeps the
    other one's, instead of overwriting it with a secret of its own (which
    would make the workers refuse each other's tokens)."""
    monkeypatch.delenv("SHOP_JWT_SECRET", raising=False)
    first, second = (Flask(f"worker{i}", instance_path=str(tmp_path)) for i in (1, 2))
    secret = shop_module._secret(first)
    path = str(tmp_path / "jwt-secret")
    real_exists = os.path.exists
    monkeypatch.setattr(os.path, "exists", lambda p: p != path and real_exists(p))
    assert shop_module._secret(second) == secret
    assert sorted(p.name for p in tmp_path.iterdir()) == ["jwt-secret"]


# -- the minimal app -----------------------------------------------------------


def test_minimal_login_and_hello(tmp_path: Any) -> None:
    app = minimal.create_app({"TESTING": True})
    app.instance_path = str(tmp_path)
    client = app.test_client()
    login = client.post("/auth/login", json={"username": "alice", "password": PASSWORD})
    assert login.status_code == 200
    hello = client.get("/hello", headers={"Authorization": f"Bearer {login.json['access_token']}"})
    assert hello.json == {"message": "Hello, alice!"}


# -- the application factory ---------------------------------------------------


@pytest.fixture
def factory_app(tmp_path: Any) -> Flask:
    app = factory.create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'factory.sqlite3'}",
            "COCART_JWT_SECRET_KEY": SECRET,
        }
    )
    with app.app_context():
        factory.db.create_all()
        user = factory.User(username="ada", email="ada@example.com", is_admin=True)
        user.set_password(PASSWORD)
        factory.db.session.add(user)
        factory.db.session.commit()
    return app


def test_factory_login_claims_and_current_user(factory_app: Flask) -> None:
    client = factory_app.test_client()
    login = client.post("/auth/login", json={"username": "ada", "password": PASSWORD})
    assert login.status_code == 200
    bearer = {"Authorization": f"Bearer {login.json['access_token']}"}
    assert client.get("/me", headers=bearer).json == {"id": 1, "username": "ada"}
    assert client.post("/auth/validate-token", headers=bearer).json["identity"] == "1"


def test_factory_tables_are_in_the_apps_metadata() -> None:
    tables = set(factory.db.metadata.tables)
    assert {"user", "cocart_jwt_sessions", "cocart_jwt_refresh_tokens"} <= tables


def test_factory_email_change_revokes(factory_app: Flask) -> None:
    client = factory_app.test_client()
    login = client.post("/auth/login", json={"username": "ada", "password": PASSWORD}).json
    with factory_app.app_context():
        user = factory.db.session.get(factory.User, 1)
        assert user is not None
        user.email = "ada@example.org"
        factory.db.session.commit()
    bearer = {"Authorization": f"Bearer {login['access_token']}"}
    assert_error(client.get("/me", headers=bearer), 401, "session_revoked")


# Flask-Migrate's own env.py template still calls db.get_engine().
@pytest.mark.filterwarnings("ignore:'get_engine' is deprecated:DeprecationWarning")
def test_factory_migrations_see_the_token_tables(tmp_path: Any) -> None:
    """``flask db migrate`` writes the token tables into the first migration."""
    from flask_migrate import init, migrate

    directory = str(tmp_path / "migrations")
    app = factory.create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'empty.sqlite3'}",
            "COCART_JWT_SECRET_KEY": SECRET,
        }
    )
    with app.app_context():
        init(directory=directory)
        migrate(directory=directory, message="users and tokens")
    script = "".join(p.read_text() for p in (tmp_path / "migrations" / "versions").glob("*.py"))
    assert "cocart_jwt_sessions" in script
    assert "cocart_jwt_refresh_tokens" in script


# -- the JavaScript client -----------------------------------------------------


NODE = shutil.which("node")


def _run_demo(config: dict[str, Any], *args: str) -> dict[str, Any]:
    """Run ``examples/js/demo.mjs`` in Node against the minimal app with ``config``."""
    assert NODE is not None
    app = minimal.create_app({"COCART_JWT_RATELIMIT_ENABLED": False, **config})
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        result = subprocess.run(  # noqa: S603 - our own script, fixed arguments
            [
                NODE,
                str(REPO / "examples" / "js" / "demo.mjs"),
                f"http://127.0.0.1:{server.server_port}",
                "alice",
                PASSWORD,
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    steps: dict[str, Any] = json.loads(result.stdout)
    return steps


@pytest.mark.skipif(NODE is None, reason="Node.js is not installed")
def test_javascript_client_refreshes_once_and_retries() -> None:
    steps = _run_demo({})
    assert steps == {
        "tokenType": "Bearer",
        "hello": {"message": "Hello, alice!"},
        "afterRefresh": [200, 200],
        "rotatedOnce": True,
        "loggedOut": 401,
    }


@pytest.mark.skipif(NODE is None, reason="Node.js is not installed")
@pytest.mark.parametrize("nonce", [False, True], ids=["dpop", "dpop-nonce"])
def test_javascript_client_in_dpop_mode(nonce: bool) -> None:
    """The client's WebCrypto proofs (Node's WebCrypto, the browser's API):
    the session is bound, refresh and retry work, the server's nonce is
    followed, the private key cannot be exported."""
    config = {"COCART_JWT_DPOP": "required", "COCART_JWT_DPOP_NONCE": nonce}
    steps = _run_demo(config, "dpop")
    assert steps == {
        "tokenType": "DPoP",
        "hello": {"message": "Hello, alice!"},
        "afterRefresh": [200, 200],
        "rotatedOnce": True,
        "privateKeyExtractable": False,
        "exportRefused": True,
        "asBearer": 401,
        "loggedOut": 401,
    }


# -- the Python DPoP client ------------------------------------------------------


@pytest.mark.parametrize("nonce", [False, True], ids=["dpop", "dpop-nonce"])
def test_python_dpop_client(nonce: bool) -> None:
    """``examples/dpop_client.py`` (requests + cryptography, no PyJWT) against
    the minimal app over real HTTP: bound login, calls, refresh; the copied
    tokens are refused without its key."""
    import requests

    from examples.dpop_client import DPoPClient

    app = minimal.create_app(
        {
            "COCART_JWT_RATELIMIT_ENABLED": False,
            "COCART_JWT_DPOP": "required",
            "COCART_JWT_DPOP_NONCE": nonce,
        }
    )
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        client = DPoPClient(base)
        client.login("alice", PASSWORD)
        assert client.token_type == "DPoP"
        assert client.request("GET", "/hello").json() == {"message": "Hello, alice!"}
        old = client.refresh_token
        client.refresh()
        assert client.refresh_token != old
        assert client.request("GET", "/hello?page=2").status_code == 200
        # Copied out: the same tokens from another client, with its own key or none.
        thief = DPoPClient(base)
        thief.access_token, thief.token_type = client.access_token, "DPoP"
        assert thief.request("GET", "/hello").status_code == 401
        bearer = {"Authorization": f"Bearer {client.access_token}"}
        assert requests.get(f"{base}/hello", headers=bearer, timeout=30).status_code == 401
        thief.refresh_token = client.refresh_token
        with pytest.raises(requests.HTTPError):
            thief.refresh()
        assert client.request("GET", "/hello").status_code == 200
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

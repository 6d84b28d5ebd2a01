"""The extension object: ``init_app``, several apps, databases and callbacks."""

from __future__ import annotations

import gc
import os
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask, Response, jsonify
from flask_sqlalchemy import SQLAlchemy

from flask_cocart_jwt import AuthError, CoCartJWT, ConfigurationError
from tests.conftest import NO_LIMITS, PASSWORDS, SECRET, AuthActions, User, assert_error

OTHER_SECRET = "another-secret-abcdefghijklmnopqrstuvwxyz-0123"


def bare_app(tmp_path: Path, name: str = "bare", **config: Any) -> Flask:
    app = Flask(name, instance_path=str(tmp_path / f"instance-{name}"))
    app.config.update(
        TESTING=True, COCART_JWT_SECRET_KEY=SECRET, COCART_JWT_RATELIMIT_ENABLED=False
    )
    app.config.update(config)
    return app


def ext_of(app: Flask) -> CoCartJWT:
    ext: CoCartJWT = app.extensions["cocart_jwt"]
    return ext


def test_constructor_with_app(tmp_path: Path) -> None:
    app = bare_app(tmp_path)
    ext = CoCartJWT(app)
    assert app.extensions["cocart_jwt"] is ext
    assert "cocart_jwt" in app.blueprints
    assert not hasattr(ext, "app")


def test_init_app_factory(tmp_path: Path) -> None:
    ext = CoCartJWT()

    def create_app() -> Flask:
        app = bare_app(tmp_path)
        ext.init_app(app)
        return app

    app = create_app()
    assert app.extensions["cocart_jwt"] is ext
    rules = {rule.rule for rule in app.url_map.iter_rules() if rule.endpoint.startswith("cocart")}
    assert {"/auth/login", "/auth/refresh-token", "/auth/validate-token", "/auth/revoke"} <= rules


def test_second_init_app_raises(tmp_path: Path) -> None:
    app = bare_app(tmp_path)
    ext = CoCartJWT(app)
    with pytest.raises(ConfigurationError, match="already initialised"):
        ext.init_app(app)
    with pytest.raises(ConfigurationError, match="once per app"):
        CoCartJWT().init_app(app)
    assert app.extensions["cocart_jwt"] is ext


def test_several_apps_side_by_side(make_app: Callable[..., Flask]) -> None:
    ext = CoCartJWT()
    shop = make_app(extension=ext, COCART_JWT_RATELIMIT_ENABLED=False)
    blog = make_app(
        extension=ext,
        COCART_JWT_SECRET_KEY=OTHER_SECRET,
        COCART_JWT_URL_PREFIX="/api/token",
        COCART_JWT_ACCESS_TOKEN_EXPIRES=60,
        COCART_JWT_RATELIMIT_ENABLED=False,
    )
    other = make_app(COCART_JWT_RATELIMIT_ENABLED=False)  # its own extension, same secret as shop
    shop_auth = AuthActions(shop.test_client())
    blog_auth = AuthActions(blog.test_client(), prefix="/api/token")
    other_auth = AuthActions(other.test_client())
    shop_tokens = shop_auth.tokens()
    blog_tokens = blog_auth.tokens("bob")
    assert shop_tokens["expires_in"] == 900
    assert blog_tokens["expires_in"] == 60
    assert blog.test_client().post("/auth/login").status_code == 404
    assert shop_auth.get("/me", shop_tokens["access_token"]).json["identity"] == "alice"
    assert blog_auth.get("/me", blog_tokens["access_token"]).json["identity"] == "bob"
    assert_error(blog_auth.get("/me", shop_tokens["access_token"]), 401, "invalid_token")
    assert_error(shop_auth.get("/me", blog_tokens["access_token"]), 401, "invalid_token")
    # Same secret, separate databases: the refresh token is unknown to the other app.
    assert_error(other_auth.refresh(shop_tokens["refresh_token"]), 401, "invalid_refresh_token")
    assert shop_auth.refresh(shop_tokens["refresh_token"]).status_code == 200


@pytest.mark.parametrize("prefix", ["/wp-json/cocart/jwt", "/wp-json/cocart/jwt/", ""])
def test_url_prefix(make_app: Callable[..., Flask], prefix: str) -> None:
    app = make_app(COCART_JWT_URL_PREFIX=prefix)
    base = prefix.rstrip("/")
    auth = AuthActions(app.test_client(), prefix=base)
    tokens = auth.tokens()
    assert auth.post(f"{base}/validate-token", tokens["access_token"]).json["valid"] is True
    assert auth.refresh(tokens["refresh_token"]).status_code == 200
    if base:
        assert app.test_client().post("/auth/login", json={}).status_code == 404


def test_flask_sqlalchemy_db(tmp_path: Path) -> None:
    db = SQLAlchemy()
    ext = CoCartJWT(db=db)
    app = bare_app(tmp_path, SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'app.db'}")
    db.init_app(app)
    ext.init_app(app)
    ext.register_credentials_checker(lambda u, p: User(u) if PASSWORDS.get(u) == p else None)
    assert {"cocart_jwt_sessions", "cocart_jwt_refresh_tokens"} <= set(db.metadata.tables)
    with app.app_context():
        db.create_all()
        assert {"cocart_jwt_sessions", "cocart_jwt_refresh_tokens"} <= set(
            sa.inspect(db.engine).get_table_names()
        )
    auth = AuthActions(app.test_client())
    tokens = auth.tokens()
    with app.app_context():
        count = db.session.execute(sa.text("SELECT count(*) FROM cocart_jwt_sessions")).scalar()
    assert count == 1
    assert auth.refresh(tokens["refresh_token"]).status_code == 200
    assert not (Path(app.instance_path) / "cocart_jwt.sqlite3").exists()


def test_apps_with_a_db_are_garbage_collected(tmp_path: Any) -> None:
    db = SQLAlchemy()
    ext = CoCartJWT(db=db)
    app = Flask("collected", instance_path=str(tmp_path))
    app.config.update(
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'gc.db'}",
        COCART_JWT_SECRET_KEY=SECRET,
    )
    db.init_app(app)
    ext.init_app(app)
    ref = weakref.ref(app)
    del app
    gc.collect()
    assert ref() is None


def test_db_and_database_uri_conflict(tmp_path: Path) -> None:
    app = bare_app(tmp_path, COCART_JWT_DATABASE_URI="sqlite://")
    with pytest.raises(ConfigurationError, match="COCART_JWT_DATABASE_URI"):
        CoCartJWT(app, db=SQLAlchemy())


def test_embedded_default_is_sqlite_in_instance_folder(make_app: Callable[..., Flask]) -> None:
    app = make_app()
    path = Path(app.instance_path) / "cocart_jwt.sqlite3"
    assert not path.exists()
    AuthActions(app.test_client()).tokens()
    assert path.exists()
    engine = sa.create_engine(f"sqlite:///{path}")
    try:
        names = set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert {"cocart_jwt_sessions", "cocart_jwt_refresh_tokens"} <= names


def test_embedded_database_uri(make_app: Callable[..., Flask], tmp_path: Path) -> None:
    path = tmp_path / "elsewhere" / "tokens.db"
    app = make_app(COCART_JWT_DATABASE_URI=f"sqlite:///{path}")
    AuthActions(app.test_client()).tokens()
    assert path.exists()
    assert not (Path(app.instance_path) / "cocart_jwt.sqlite3").exists()


CALLBACKS = [
    "credentials_checker",
    "user_identity_loader",
    "user_loader",
    "additional_claims_loader",
    "login_response_loader",
    "error_response_loader",
]


@pytest.mark.parametrize("name", CALLBACKS)
def test_callback_decorators_store_and_return_the_function(name: str) -> None:
    ext = CoCartJWT()

    def callback(*args: Any) -> Any:
        return None

    assert getattr(ext, name)(callback) is callback
    assert getattr(ext, f"_{name}") is callback

    def other(*args: Any) -> Any:
        return None

    assert getattr(ext, f"register_{name}")(other) is None
    assert getattr(ext, f"_{name}") is other


def test_missing_credentials_checker_is_a_clear_error(tmp_path: Path) -> None:
    app = bare_app(tmp_path)
    CoCartJWT(app)
    client = app.test_client()
    with pytest.raises(RuntimeError, match="credentials_checker"):
        client.post("/auth/login", json={"username": "a", "password": "b"})


class Named:
    def __str__(self) -> str:
        return "named-user"


class WithId:
    id = 42


def test_default_identity(make_app: Callable[..., Flask]) -> None:
    app = make_app()
    ext = ext_of(app)
    users: dict[str, Any] = {"a": WithId(), "b": Named(), "c": "plain"}
    ext.register_credentials_checker(lambda u, p: users.get(u))
    auth = AuthActions(app.test_client())
    assert auth.get("/me", auth.tokens("a")["access_token"]).json["identity"] == "42"
    assert auth.get("/me", auth.tokens("b")["access_token"]).json["identity"] == "named-user"
    assert auth.get("/me", auth.tokens("c")["access_token"]).json["identity"] == "plain"


@pytest.mark.parametrize("use_decorator", [True, False])
def test_user_identity_loader(make_app: Callable[..., Flask], use_decorator: bool) -> None:
    app = make_app()
    ext = ext_of(app)

    def identity(user: User) -> str:
        return f"user:{user.id}"

    if use_decorator:
        ext.user_identity_loader(identity)
    else:
        ext.register_user_identity_loader(identity)
    auth = AuthActions(app.test_client())
    tokens = auth.tokens()
    assert auth.get("/me", tokens["access_token"]).json["identity"] == "user:alice"
    refreshed = auth.refresh(tokens["refresh_token"]).json["access_token"]
    assert auth.get("/me", refreshed).json["identity"] == "user:alice"


def test_user_loader_backs_current_user(make_app: Callable[..., Flask]) -> None:
    app = make_app()
    loaded: list[str] = []

    def load(identity: str) -> User | None:
        loaded.append(identity)
        return User(f"loaded-{identity}") if identity == "alice" else None

    ext_of(app).register_user_loader(load)
    auth = AuthActions(app.test_client())
    alice, bob = auth.tokens("alice"), auth.tokens("bob")
    assert auth.get("/whoami", alice["access_token"]).json == {"id": "loaded-alice"}
    assert_error(auth.get("/whoami", bob["access_token"]), 401, "user_not_found")
    assert_error(auth.get("/me", bob["access_token"]), 401, "user_not_found")
    assert_error(auth.refresh(bob["refresh_token"]), 401, "user_not_found")
    assert loaded.count("bob") == 3


def test_deleted_user_is_user_not_found_on_every_bearer_route(
    make_app: Callable[..., Flask],
) -> None:
    """``user_not_found`` on every route that takes a Bearer token, not only on
    the app's protected views."""
    app = make_app(**NO_LIMITS)
    users = {"alice"}
    app.extensions["cocart_jwt"].register_user_loader(lambda i: i if i in users else None)
    auth = AuthActions(app.test_client())
    token = auth.tokens()["access_token"]
    users.clear()
    for response in (
        auth.get("/me", token),
        auth.post("/auth/validate-token", token),
        auth.get("/auth/sessions", token),
        auth.post("/auth/revoke-all", token),
    ):
        assert_error(response, 401, "user_not_found")


def test_additional_claims(make_app: Callable[..., Flask]) -> None:
    app = make_app()
    ext = ext_of(app)
    seen: list[Any] = []

    @ext.additional_claims_loader
    def claims(user: Any) -> dict[str, Any]:
        seen.append(user)
        return {
            "roles": ["customer"],
            "cart": {"items": 2},
            "sub": "root",
            "exp": 9_999_999_999,
            "sid": "forged",
            "fresh": True,
            "jti": "fixed",
            "iat": 1,
            "nbf": 1,
            "iss": "evil",
            "aud": "evil",
        }

    auth = AuthActions(app.test_client())
    tokens = auth.tokens()
    got = auth.get("/me", tokens["access_token"]).json["claims"]
    assert got["roles"] == ["customer"]
    assert got["cart"] == {"items": 2}
    assert got["sub"] == "alice"
    assert got["sid"] == tokens["session_id"]
    assert got["exp"] == got["iat"] + 900
    assert got["jti"] != "fixed"
    assert got["nbf"] == got["iat"] != 1
    assert "iss" not in got
    assert "aud" not in got
    assert isinstance(seen[0], User)
    refreshed = auth.refresh(tokens["refresh_token"]).json["access_token"]
    again = auth.get("/me", refreshed).json["claims"]
    assert again["roles"] == ["customer"]
    assert again["fresh"] is False
    assert seen[1] == "alice"  # no user loader: the identity


def test_login_response_loader(make_app: Callable[..., Flask]) -> None:
    app = make_app()
    ext = ext_of(app)
    ext.register_login_response_loader(
        lambda user: {
            "user": {"id": user.id, "display_name": user.id.title()},
            "access_token": "forged",
            "refresh_token": "forged",
            "token_type": "MAC",
            "expires_in": 1,
            "session_id": "forged",
        }
    )
    auth = AuthActions(app.test_client())
    body = auth.tokens()
    assert body["user"] == {"id": "alice", "display_name": "Alice"}
    assert body["access_token"] != "forged"
    assert body["refresh_token"].startswith("rt_")
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 900
    assert body["session_id"] != "forged"
    assert auth.get("/me", body["access_token"]).status_code == 200
    refreshed = auth.refresh(body["refresh_token"]).json
    assert "user" not in refreshed


@pytest.mark.parametrize("use_decorator", [True, False])
def test_error_response_loader(make_app: Callable[..., Flask], use_decorator: bool) -> None:
    app = make_app()
    ext = ext_of(app)

    def render(error: AuthError) -> Response:
        response = jsonify(code=error.error, detail=error.message, status=error.status_code)
        response.status_code = error.status_code
        response.headers.update(error.headers)
        response.headers["X-Error"] = error.error
        return response

    if use_decorator:
        assert ext.error_response_loader(render) is render
    else:
        ext.register_error_response_loader(render)
    client = app.test_client()
    missing = client.get("/me")
    assert missing.status_code == 401
    assert missing.json == {
        "code": "missing_token",
        "detail": "An access token is required.",
        "status": 401,
    }
    assert missing.headers["X-Error"] == "missing_token"
    bad = client.post("/auth/login", data="{", content_type="application/json")
    assert bad.status_code == 400
    assert bad.get_json()["code"] == "invalid_request"
    wrong = client.post("/auth/login", json={"username": "alice", "password": "x"})
    assert wrong.get_json()["code"] == "invalid_credentials"
    assert wrong.headers["WWW-Authenticate"] == 'Bearer realm="api"'


def test_issue_tokens_programmatically(make_app: Callable[..., Flask]) -> None:
    app = make_app()
    ext = ext_of(app)
    with app.test_request_context():
        pair = ext.issue_tokens(User("carol"))
    assert pair.refresh_token.startswith("rt_")
    assert pair.token_type == "Bearer"
    assert pair.access_token not in repr(pair)
    assert pair.refresh_token not in repr(pair)
    auth = AuthActions(app.test_client())
    assert auth.get("/me", pair.access_token).json["identity"] == "carol"
    with app.app_context():
        cli_pair = ext.issue_tokens(User("dave"), fresh=False)
    assert_error(auth.post("/fresh", cli_pair.access_token), 401, "fresh_token_required")


def test_api_outside_app_context_is_a_clear_error() -> None:
    with pytest.raises(RuntimeError, match="application context"):
        CoCartJWT().issue_tokens(User("x"))


def test_api_on_app_without_init_app(tmp_path: Path) -> None:
    app = bare_app(tmp_path)
    with app.app_context(), pytest.raises(RuntimeError, match="init_app"):
        CoCartJWT().list_sessions("alice")


def test_no_stray_files_without_requests(make_app: Callable[..., Flask]) -> None:
    app = make_app()
    assert not os.path.exists(os.path.join(app.instance_path, "cocart_jwt.sqlite3"))

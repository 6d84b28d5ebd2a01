"""``@jwt_required`` and the request helpers (``get_jwt``, ``current_user``...)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import pytest
from flask import Flask, jsonify, request
from flask.testing import FlaskClient
from flask.views import MethodView

from flask_cocart_jwt import (
    CoCartJWT,
    current_user,
    get_current_user,
    get_jwt,
    get_jwt_identity,
    jwt_required,
    verify_jwt_in_request,
)
from tests.conftest import AuthActions, User, assert_error


def bearer(token: str, scheme: str = "Bearer") -> dict[str, str]:
    return {"Authorization": f"{scheme} {token}"}


@pytest.fixture
def decorated_views(app: Flask) -> None:
    """Views of ``app`` for the decorator's other forms and the unprotected helpers."""

    @app.get("/called")
    @jwt_required()
    def called() -> Any:
        return jsonify(identity=get_jwt_identity())

    @app.get("/optional-claims")
    @jwt_required(optional=True)
    def optional_claims() -> Any:
        return jsonify(claims=get_jwt(), identity=get_jwt_identity(), user=get_current_user())

    @app.route("/preflight", methods=["GET", "OPTIONS"])
    @jwt_required
    def preflight() -> Any:
        if request.method == "OPTIONS":
            return jsonify(preflight=True)
        return jsonify(identity=get_jwt_identity())

    @app.get("/open")
    def open_view() -> Any:
        return jsonify(claims=get_jwt())

    @app.get("/open-identity")
    def open_identity() -> Any:
        return jsonify(identity=get_jwt_identity())


def test_bare_decorator(auth: AuthActions) -> None:
    token = auth.tokens()["access_token"]
    response = auth.get("/me", token)
    assert response.status_code == 200
    assert response.json["identity"] == "alice"
    assert response.json["claims"]["sub"] == "alice"
    assert_error(auth.client.get("/me"), 401, "missing_token")


@pytest.mark.usefixtures("decorated_views")
def test_called_decorator(auth: AuthActions) -> None:
    token = auth.tokens("bob")["access_token"]
    assert auth.get("/called", token).json == {"identity": "bob"}
    assert_error(auth.client.get("/called"), 401, "missing_token")


def test_decorated_view_keeps_its_name_and_doc() -> None:
    def view(order_id: int) -> str:
        """The doc."""
        return str(order_id)

    for wrapped in (jwt_required(view), jwt_required()(view), jwt_required(fresh=True)(view)):
        assert wrapped.__name__ == "view"
        assert wrapped.__doc__ == "The doc."
        assert wrapped.__wrapped__ is view  # type: ignore[attr-defined]


@pytest.mark.usefixtures("decorated_views")
def test_optional_without_token(client: FlaskClient) -> None:
    response = client.get("/optional-claims")
    assert response.status_code == 200
    assert response.json == {"claims": {}, "identity": None, "user": None}
    assert client.get("/optional").json == {"identity": None}


def test_optional_with_valid_token(auth: AuthActions) -> None:
    token = auth.tokens()["access_token"]
    assert auth.get("/optional", token).json == {"identity": "alice"}


@pytest.mark.parametrize("token", ["garbage", "a.b.c", "Bearer"])
def test_optional_with_invalid_token_is_still_refused(auth: AuthActions, token: str) -> None:
    assert_error(auth.get("/optional", token), 401, "invalid_token")


def test_fresh_accepts_login_token(auth: AuthActions) -> None:
    token = auth.tokens()["access_token"]
    response = auth.post("/fresh", token)
    assert response.status_code == 200
    assert response.json == {"identity": "alice"}


def test_fresh_rejects_refreshed_token(auth: AuthActions) -> None:
    refreshed = auth.refresh(auth.tokens()["refresh_token"]).json["access_token"]
    assert auth.get("/me", refreshed).status_code == 200
    assert_error(auth.post("/fresh", refreshed), 401, "fresh_token_required")
    assert_error(auth.client.post("/fresh"), 401, "missing_token")


PREFLIGHT = {"Origin": "https://shop.example", "Access-Control-Request-Method": "GET"}


@pytest.mark.usefixtures("decorated_views")
def test_options_needs_a_token_unless_it_is_a_cors_preflight(auth: AuthActions) -> None:
    # The route lists OPTIONS itself, so Flask does not answer it: the view would run.
    client = auth.client
    assert_error(client.options("/preflight"), 401, "missing_token")
    assert_error(
        client.options("/preflight", headers={"Origin": "https://x"}), 401, "missing_token"
    )
    assert_error(
        client.options("/preflight", headers={"Access-Control-Request-Method": "GET"}),
        401,
        "missing_token",
    )
    token = auth.tokens()["access_token"]
    response = client.options("/preflight", headers=bearer(token))
    assert response.json == {"preflight": True}


@pytest.mark.usefixtures("decorated_views")
def test_a_cors_preflight_gets_the_default_answer_without_the_view(client: FlaskClient) -> None:
    for headers in (PREFLIGHT, {**PREFLIGHT, **bearer("not-a-token")}):
        response = client.options("/preflight", headers=headers)
        assert response.status_code == 200
        assert response.get_data() == b""  # not the view's {"preflight": true}
        assert set(response.headers["Allow"].split(", ")) == {"GET", "HEAD", "OPTIONS"}


def test_method_view_options_needs_a_token(make_app: Callable[..., Flask]) -> None:
    app = make_app()
    ran: list[str] = []

    class Users(MethodView):
        decorators: ClassVar[list[Any]] = [jwt_required]

        def get(self) -> Any:
            ran.append("get")
            return jsonify(users=["alice", "bob"])

        def options(self) -> Any:
            ran.append("options")
            return self.get()

    app.add_url_rule("/users", view_func=Users.as_view("users"))
    auth = AuthActions(app.test_client())
    assert_error(auth.client.options("/users"), 401, "missing_token")
    preflight = auth.client.options("/users", headers=PREFLIGHT)
    assert (preflight.status_code, preflight.get_data()) == (200, b"")
    assert ran == []
    token = auth.tokens()["access_token"]
    assert auth.client.options("/users", headers=bearer(token)).json == {"users": ["alice", "bob"]}
    assert ran == ["options", "get"]


def test_async_views(make_app: Callable[..., Flask]) -> None:
    pytest.importorskip("asgiref", reason="Flask's async views need asgiref (flask[async])")
    app = make_app()

    @app.get("/async")
    @jwt_required
    async def async_view() -> Any:
        return jsonify(identity=get_jwt_identity())

    @app.route("/async-fresh", methods=["GET", "OPTIONS"])
    @jwt_required(fresh=True)
    async def async_fresh() -> Any:
        return jsonify(method=request.method)

    auth = AuthActions(app.test_client())
    tokens = auth.tokens()
    assert auth.get("/async", tokens["access_token"]).json == {"identity": "alice"}
    assert_error(auth.client.get("/async"), 401, "missing_token")
    assert_error(auth.client.options("/async-fresh"), 401, "missing_token")
    preflight = auth.client.options("/async-fresh", headers=PREFLIGHT)
    assert (preflight.status_code, preflight.get_data()) == (200, b"")
    options = auth.client.options("/async-fresh", headers=bearer(tokens["access_token"]))
    assert options.json == {"method": "OPTIONS"}
    refreshed = auth.refresh(tokens["refresh_token"]).json["access_token"]
    assert_error(auth.get("/async-fresh", refreshed), 401, "fresh_token_required")


def test_get_jwt_outside_request_raises_helpful_error() -> None:
    for helper in (get_jwt, get_jwt_identity, get_current_user):
        with pytest.raises(RuntimeError, match="jwt_required"):
            helper()


@pytest.mark.usefixtures("decorated_views")
def test_helpers_on_unprotected_view_raise(app: Flask) -> None:
    with app.test_request_context("/open"):
        with pytest.raises(RuntimeError, match="not protected"):
            get_jwt()
        with pytest.raises(RuntimeError, match="verify_jwt_in_request"):
            get_jwt_identity()
        with pytest.raises(RuntimeError, match="not protected"):
            get_current_user()
        with pytest.raises(RuntimeError, match="not protected"):
            _ = current_user.id


@pytest.mark.usefixtures("decorated_views")
def test_claims_do_not_leak_into_a_later_request(app: Flask, auth: AuthActions) -> None:
    token = auth.tokens()["access_token"]
    with app.app_context():  # one app context (and one ``g``) for both requests
        assert auth.get("/me", token).status_code == 200
        with pytest.raises(RuntimeError, match="not protected"):
            auth.client.get("/open", headers=bearer(token))
        with pytest.raises(RuntimeError, match="not protected"):
            auth.client.get("/open-identity")


def test_verify_jwt_in_request_in_before_request(make_app: Callable[..., Flask]) -> None:
    app = make_app()
    seen: list[Any] = []

    @app.before_request
    def check() -> None:
        if request.path.startswith("/api/"):
            seen.append(verify_jwt_in_request())
        elif request.path.startswith("/maybe/"):
            seen.append(verify_jwt_in_request(optional=True))

    @app.get("/api/orders")
    def orders() -> Any:
        return jsonify(identity=get_jwt_identity(), sid=get_jwt()["sid"])

    @app.get("/maybe/cart")
    def cart() -> Any:
        return jsonify(identity=get_jwt_identity())

    auth = AuthActions(app.test_client())
    tokens = auth.tokens()
    response = auth.get("/api/orders", tokens["access_token"])
    assert response.json == {"identity": "alice", "sid": tokens["session_id"]}
    assert isinstance(seen[-1], dict)
    assert seen[-1]["sub"] == "alice"
    assert_error(auth.client.get("/api/orders"), 401, "missing_token")
    assert auth.client.get("/maybe/cart").json == {"identity": None}
    assert seen[-1] is None


def test_verify_jwt_in_request_fresh(make_app: Callable[..., Flask]) -> None:
    app = make_app()

    @app.post("/password")
    def password() -> Any:
        verify_jwt_in_request(fresh=True)
        return jsonify(ok=True)

    auth = AuthActions(app.test_client())
    tokens = auth.tokens()
    assert auth.post("/password", tokens["access_token"]).json == {"ok": True}
    refreshed = auth.refresh(tokens["refresh_token"]).json["access_token"]
    assert_error(auth.post("/password", refreshed), 401, "fresh_token_required")


def test_custom_header_name_and_type(make_app: Callable[..., Flask]) -> None:
    app = make_app(COCART_JWT_HEADER_NAME="X-Api-Token", COCART_JWT_HEADER_TYPE="JWT")
    auth = AuthActions(app.test_client())
    token = auth.tokens()["access_token"]
    client = auth.client
    assert client.get("/me", headers={"X-Api-Token": f"JWT {token}"}).status_code == 200
    assert client.get("/me", headers={"X-Api-Token": f"jwt {token}"}).status_code == 200
    for response in (
        client.get("/me", headers=bearer(token)),
        client.get("/me", headers={"X-Api-Token": f"Bearer {token}"}),
    ):
        assert response.status_code == 401
        assert response.json["error"] == "missing_token"
        # The challenge names the app's scheme, not Bearer.
        assert response.headers["WWW-Authenticate"] == 'JWT realm="api"'
    garbage = client.get("/me", headers={"X-Api-Token": "JWT a.b.c"})
    assert garbage.headers["WWW-Authenticate"] == 'JWT error="invalid_token"'
    validated = client.post("/auth/validate-token", headers={"X-Api-Token": f"JWT {token}"})
    assert validated.get_json()["valid"] is True


def test_current_user_with_user_loader(make_app: Callable[..., Flask]) -> None:
    app = make_app()
    ext: CoCartJWT = app.extensions["cocart_jwt"]
    ext.register_user_loader(lambda identity: User(identity.upper()))

    @app.get("/user")
    @jwt_required
    def user() -> Any:
        assert get_current_user() is current_user._get_current_object()
        return jsonify(id=current_user.id, cls=type(get_current_user()).__name__)

    auth = AuthActions(app.test_client())
    token = auth.tokens()["access_token"]
    assert auth.get("/user", token).json == {"id": "ALICE", "cls": "User"}
    assert auth.get("/whoami", token).json == {"id": "ALICE"}


def test_current_user_without_user_loader_is_a_clear_error(auth: AuthActions) -> None:
    token = auth.tokens()["access_token"]
    with pytest.raises(RuntimeError, match="user_loader"):
        auth.get("/whoami", token)


def test_user_loader_returning_none_rejects_token(make_app: Callable[..., Flask]) -> None:
    app = make_app()
    ext: CoCartJWT = app.extensions["cocart_jwt"]
    alive = {"alice"}

    @ext.user_loader
    def load(identity: str) -> User | None:
        return User(identity) if identity in alive else None

    auth = AuthActions(app.test_client())
    tokens = auth.tokens()
    assert auth.get("/whoami", tokens["access_token"]).json == {"id": "alice"}
    alive.clear()
    assert_error(auth.get("/whoami", tokens["access_token"]), 401, "user_not_found")
    assert_error(auth.get("/optional", tokens["access_token"]), 401, "user_not_found")
    assert_error(auth.refresh(tokens["refresh_token"]), 401, "user_not_found")

"""Unknown paths and methods under the URL prefix answer the contract's JSON.

Werkzeug's routing refuses them before any blueprint is known, so the
blueprint's own error handler never sees them; the extension answers them
through its error path (``error_response_loader`` applies) and leaves every
other path of the app to the app's own 404 and 405.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask, jsonify
from flask.testing import FlaskClient

from flask_cocart_jwt import AuthError, CoCartJWT
from tests.conftest import assert_error

UNKNOWN_PATHS = [
    ("POST", "/auth/logout"),
    ("POST", "/auth/refresh-token/"),
    ("POST", "/auth/login/"),
    ("DELETE", "/auth/sessions/"),
    ("GET", "/auth/sessions/"),
    ("GET", "/auth"),
    ("GET", "/auth/"),
    ("OPTIONS", "/auth/nothing-here"),
    ("TRACE", "/auth/nothing-here"),
    # Routing is case-sensitive; the JSON 404 covers the prefix in any case.
    ("POST", "/AUTH/login"),
    ("GET", "/Auth/jwks.json"),
]

ROUTE_ALLOW = {
    "/auth/login": {"POST", "OPTIONS"},
    "/auth/refresh-token": {"POST", "OPTIONS"},
    "/auth/validate-token": {"POST", "OPTIONS"},
    "/auth/revoke": {"POST", "OPTIONS"},
    "/auth/revoke-all": {"POST", "OPTIONS"},
    "/auth/sessions": {"GET", "HEAD", "OPTIONS"},
    "/auth/sessions/abc": {"DELETE", "OPTIONS"},
    "/auth/sessions/a/b": {"DELETE", "OPTIONS"},
    "/auth/jwks.json": {"GET", "HEAD", "OPTIONS"},
    "/auth/openapi.json": {"GET", "HEAD", "OPTIONS"},
}


def allow_of(response: Any) -> set[str]:
    return set(response.headers["Allow"].split(", "))


@pytest.mark.parametrize(("method", "path"), UNKNOWN_PATHS)
def test_unknown_paths_under_the_prefix_are_json_404(
    client: FlaskClient, method: str, path: str
) -> None:
    response = client.open(path, method=method)
    assert_error(response, 404, "not_found")


@pytest.mark.parametrize("method", ["TRACE", "CONNECT", "FOO", "PROPFIND"])
@pytest.mark.parametrize("path", sorted(ROUTE_ALLOW))
def test_unknown_methods_are_json_405_with_the_routes_allow(
    client: FlaskClient, path: str, method: str
) -> None:
    response = client.open(path, method=method)
    assert_error(response, 405, "method_not_allowed")
    assert allow_of(response) == ROUTE_ALLOW[path]


def test_error_response_loader_renders_them(make_app: Callable[..., Flask]) -> None:
    ext = CoCartJWT()
    app = make_app(extension=ext, COCART_JWT_RATELIMIT_ENABLED=False)

    @ext.error_response_loader
    def render(error: AuthError) -> Any:
        response = jsonify(code=error.error)
        response.status_code = error.status_code
        response.headers.update(error.headers)
        return response

    client = app.test_client()
    assert client.post("/auth/logout").json == {"code": "not_found"}
    response = client.open("/auth/login", method="TRACE")
    assert (response.status_code, response.json) == (405, {"code": "method_not_allowed"})
    assert allow_of(response) == {"POST", "OPTIONS"}
    # The blueprint's own 405s take the same path.
    assert client.get("/auth/login").json == {"code": "method_not_allowed"}


def test_the_apps_own_404_and_405_are_untouched(make_app: Callable[..., Flask]) -> None:
    app = make_app(COCART_JWT_RATELIMIT_ENABLED=False)

    @app.get("/auth-help")
    def auth_help() -> Any:
        return "help"

    client = app.test_client()
    for path in ("/nope", "/authx/login", "/api/auth/login"):
        response = client.post(path)
        assert response.status_code == 404
        assert response.mimetype == "text/html"
    assert client.get("/auth-help").get_data() == b"help"
    response = client.open("/me", method="TRACE")
    assert response.status_code == 405
    assert response.mimetype == "text/html"
    assert allow_of(response) == {"GET", "HEAD", "OPTIONS"}
    response = client.post("/me")
    assert (response.status_code, response.mimetype) == (405, "text/html")


@pytest.mark.parametrize("when", ["before", "after"])
def test_the_apps_own_error_handlers_still_run(tmp_path: Any, when: str) -> None:
    app = Flask("handlers", instance_path=str(tmp_path / "instance"))
    app.config.update(
        TESTING=True,
        COCART_JWT_SECRET_KEY="test-secret-0123456789-abcdefghijklmnopqrstuvwxyz",
        COCART_JWT_RATELIMIT_ENABLED=False,
    )

    def register() -> None:
        @app.errorhandler(404)
        def not_found(error: Exception) -> Any:
            return jsonify(app_says="no such page"), 404

        @app.errorhandler(405)
        def not_allowed(error: Exception) -> Any:
            return jsonify(app_says="wrong method"), 405

    if when == "before":
        register()
    CoCartJWT(app)
    if when == "after":
        register()

    @app.get("/page")
    def page() -> Any:
        return "page"

    client = app.test_client()
    assert client.get("/nope").json == {"app_says": "no such page"}
    assert client.open("/page", method="TRACE").json == {"app_says": "wrong method"}
    assert_error(client.get("/auth/nope"), 404, "not_found")
    assert_error(client.open("/auth/login", method="FOO"), 405, "method_not_allowed")


def test_an_apps_route_under_the_prefix_keeps_its_allow(make_app: Callable[..., Flask]) -> None:
    app = make_app(COCART_JWT_RATELIMIT_ENABLED=False)

    @app.get("/auth/extra")
    def extra() -> Any:
        return "extra"

    client = app.test_client()
    assert client.get("/auth/extra").get_data() == b"extra"
    response = client.open("/auth/extra", method="TRACE")
    assert_error(response, 405, "method_not_allowed")
    assert allow_of(response) == {"GET", "HEAD", "OPTIONS"}


def test_a_custom_prefix(make_app: Callable[..., Flask]) -> None:
    app = make_app(COCART_JWT_RATELIMIT_ENABLED=False, COCART_JWT_URL_PREFIX="/wp-json/cocart/jwt")
    client = app.test_client()
    assert_error(client.post("/wp-json/cocart/jwt/logout"), 404, "not_found")
    assert_error(client.post("/WP-JSON/cocart/JWT/login"), 404, "not_found")
    response = client.open("/wp-json/cocart/jwt/login", method="TRACE")
    assert_error(response, 405, "method_not_allowed")
    assert allow_of(response) == {"POST", "OPTIONS"}
    response = client.post("/auth/logout")
    assert (response.status_code, response.mimetype) == (404, "text/html")


def test_an_empty_prefix_keeps_the_apps_404(make_app: Callable[..., Flask]) -> None:
    # Every path is "under" an empty prefix: only the token routes' 405s are
    # the extension's; unknown paths stay the app's.
    app = make_app(COCART_JWT_RATELIMIT_ENABLED=False, COCART_JWT_URL_PREFIX="")
    client = app.test_client()
    response = client.post("/logout")
    assert (response.status_code, response.mimetype) == (404, "text/html")
    response = client.open("/login", method="TRACE")
    assert_error(response, 405, "method_not_allowed")
    assert allow_of(response) == {"POST", "OPTIONS"}
    response = client.open("/me", method="TRACE")
    assert (response.status_code, response.mimetype) == (405, "text/html")


def test_no_hook_runs_on_the_apps_other_routes(make_app: Callable[..., Flask]) -> None:
    # The JSON 404/405 under the prefix come from URL rules, not from an
    # app-wide before_request hook that every request of the app would pay for.
    app = make_app(COCART_JWT_RATELIMIT_ENABLED=False)
    hooks = [getattr(hook, "__name__", "") for hook in app.before_request_funcs.get(None, [])]
    assert "unrouted" not in hooks


def test_flask_routes_lists_the_fallback_rules(make_app: Callable[..., Flask]) -> None:
    app = make_app(COCART_JWT_RATELIMIT_ENABLED=False)
    from flask.cli import routes_command

    result = app.test_cli_runner().invoke(routes_command)
    assert result.exit_code == 0, result.output
    assert "cocart_jwt.unrouted" in result.output

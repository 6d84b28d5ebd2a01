"""The shipped OpenAPI 3.1 document: valid, complete, served, and true of the running routes.

The contract run fetches the document from the shop example's
``/auth/openapi.json``, sends schemathesis-generated requests (valid and
invalid bodies, random Bearer values, random session ids, undocumented
methods) to the shop and checks that no answer is a server error and that
every answer is documented (status, content type, headers and body schema).
"""

from __future__ import annotations

import copy
import json
from typing import Any

import hypothesis
import jsonschema_rs
import pytest
import schemathesis
from flask import Flask
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    allow_header_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)
from werkzeug.security import generate_password_hash

from examples import shop as shop_module
from examples.shop import User, cocart_jwt, create_app, db
from flask_cocart_jwt import ConfigurationError
from flask_cocart_jwt.openapi import openapi_document
from flask_cocart_jwt.views import BLUEPRINT_NAME
from tests.conftest import SECRET, TOKEN_FIELDS, AuthActions, assert_error

#: SPEC section 4: every route and its method, relative to the URL prefix.
ROUTES = {
    ("post", "/login"),
    ("post", "/refresh-token"),
    ("post", "/validate-token"),
    ("post", "/revoke"),
    ("post", "/revoke-all"),
    ("get", "/sessions"),
    ("delete", "/sessions/{session_id}"),
    ("get", "/jwks.json"),
    ("get", "/openapi.json"),
}
ERROR_STATUSES = {"400", "401", "403", "404", "429", "503"}
#: The routes that need no token and count against no limit.
PUBLIC_PATHS = {"/jwks.json", "/openapi.json"}


def _resolve(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = document
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def test_document_version_is_the_release_of_the_package() -> None:
    from importlib.metadata import version

    from packaging.version import Version

    release = Version(version("Flask-CoCart-JWT")).base_version
    assert openapi_document()["info"]["version"] == release


def test_document_is_valid_openapi_31() -> None:
    document = openapi_document()
    assert document["openapi"].startswith("3.1.")
    schema = schemathesis.openapi.from_dict(document)
    schema.validate()
    operations = set()
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result
        operations.add((result.ok().method, result.ok().path))
    assert operations == ROUTES


def test_component_schemas_are_valid_json_schema() -> None:
    for name, schema in openapi_document()["components"]["schemas"].items():
        assert jsonschema_rs.meta.is_valid(schema), name


def test_an_invalid_document_is_caught() -> None:
    """The validity check above can fail: a broken document is refused."""
    document = openapi_document()
    document["paths"]["/login"]["post"]["responses"]["200"] = {"content": 1}
    with pytest.raises(jsonschema_rs.ValidationError):
        schemathesis.openapi.from_dict(document).validate()


def test_every_route_documents_its_statuses() -> None:
    document = openapi_document()
    for path, item in document["paths"].items():
        for method, operation in item.items():
            statuses = set(operation["responses"])
            assert "200" in statuses, (method, path)
            if path not in PUBLIC_PATHS:
                assert {"400", "401", "429", "503"} <= statuses, (method, path)
                assert statuses <= {"200"} | ERROR_STATUSES
            for status in statuses - {"200", "304"}:
                response = _resolve(document, operation["responses"][status])
                body = response["content"]["application/json"]["schema"]
                assert body["allOf"][0] == {"$ref": "#/components/schemas/Error"}
    assert "404" in document["paths"]["/sessions/{session_id}"]["delete"]["responses"]
    error = document["components"]["schemas"]["Error"]
    assert error["required"] == ["error", "message"]
    assert {"not_found", "method_not_allowed"} <= set(error["properties"]["error"]["enum"])
    # Unknown paths and methods under the prefix (SPEC section 12).
    responses = document["components"]["responses"]
    assert set(responses["NotFound"]["content"]) == {"application/json"}
    not_allowed = responses["MethodNotAllowed"]
    assert not_allowed["headers"]["Allow"]["required"] is True
    body = not_allowed["content"]["application/json"]["schema"]
    assert body["allOf"][1]["properties"]["error"]["enum"] == ["method_not_allowed"]


def test_security_and_request_bodies() -> None:
    document = openapi_document()
    assert document["components"]["securitySchemes"]["bearerAuth"] == {
        **document["components"]["securitySchemes"]["bearerAuth"],
        "type": "http",
        "scheme": "bearer",
    }
    paths = document["paths"]
    for path in ("/validate-token", "/revoke-all", "/sessions", "/sessions/{session_id}"):
        (method, operation), *_ = paths[path].items()
        # Or, with COCART_JWT_ACCESS_COOKIE, the access cookie (plus the CSRF
        # header for unsafe methods).
        cookie = {"accessCookie": []} if method == "get" else {"accessCookie": [], "csrfToken": []}
        # Or a DPoP-bound token with its proof.
        assert operation["security"] == [{"bearerAuth": []}, {"dpopAuth": []}, cookie], path
        assert {"$ref": "#/components/parameters/DPoP"} in operation["parameters"], path
    assert document["components"]["securitySchemes"]["dpopAuth"]["scheme"] == "dpop"
    for path in ("/login", "/refresh-token", "/revoke"):
        parameters = paths[path]["post"]["parameters"]
        assert {"$ref": "#/components/parameters/DPoP"} in parameters, path
    login = paths["/login"]["post"]["requestBody"]
    assert login["required"] is True
    assert set(login["content"]) >= {"application/json", "application/x-www-form-urlencoded"}
    credentials = document["components"]["schemas"]["Credentials"]
    assert credentials["required"] == ["username", "password"]
    # Not required: browser requests in cookie mode send the refresh cookie instead.
    assert paths["/refresh-token"]["post"]["requestBody"]["required"] is False
    revoke = paths["/revoke"]["post"]["requestBody"]
    assert revoke["required"] is False
    assert set(revoke["content"]) == {"application/json", "application/x-www-form-urlencoded"}
    fields = document["components"]["schemas"]["RevokeRequest"]["properties"]
    assert set(fields) == {"token", "token_type_hint", "refresh_token"}
    token = document["components"]["schemas"]["TokenResponse"]
    assert set(token["required"]) == TOKEN_FIELDS - {"refresh_token"}
    assert set(token["properties"]) == TOKEN_FIELDS


def test_url_prefix_sets_the_server() -> None:
    assert openapi_document()["servers"][0]["url"] == "/auth"
    assert openapi_document(url_prefix="/api/v1/auth")["servers"][0]["url"] == "/api/v1/auth"


def test_without_its_own_route() -> None:
    document = openapi_document(openapi_route=False)
    assert "/openapi.json" not in document["paths"]
    assert set(document["paths"]) == {path for _, path in ROUTES} - {"/openapi.json"}


@pytest.mark.parametrize("openapi_route", [True, False])
def test_document_lists_exactly_the_registered_routes(make_app: Any, openapi_route: bool) -> None:
    """Every rule of the blueprint is a documented operation, and the other way round."""
    app = make_app(COCART_JWT_OPENAPI_ROUTE=openapi_route)
    registered = set()
    for rule in app.url_map.iter_rules():
        endpoint = rule.endpoint.removeprefix(f"{BLUEPRINT_NAME}.")
        if endpoint in (rule.endpoint, "unrouted") or endpoint.endswith("_other_methods"):
            continue
        path = rule.rule.removeprefix("/auth").replace("<path:session_id>", "{session_id}")
        path = path.replace("<session_id>", "{session_id}")
        registered |= {(m.lower(), path) for m in rule.methods or ()} - {("head", path)}
    document = openapi_document(openapi_route=openapi_route)
    documented = {(m, p) for p, item in document["paths"].items() for m in item}
    assert registered == documented


# -- the served document -----------------------------------------------------


def test_served_at_the_prefix(make_app: Any) -> None:
    app = make_app(COCART_JWT_URL_PREFIX="/api/v1/auth")
    client = app.test_client()
    response = client.get("/api/v1/auth/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    document = response.get_json()
    assert document == openapi_document(url_prefix="/api/v1/auth")
    # In the authored order, not sorted by the app's JSON provider.
    assert list(json.loads(response.get_data())) == list(openapi_document())
    # The server URL and the paths lead to the routes.
    server = document["servers"][0]["url"]
    for path, item in document["paths"].items():
        allowed = client.options(server + path.replace("{session_id}", "x")).headers["Allow"]
        assert {m.upper() for m in item} <= set(allowed.split(", ")), path
    assert client.get("/auth/openapi.json").status_code == 404


def test_served_under_the_script_root(make_app: Any) -> None:
    """Mounted at /shop (SCRIPT_NAME), the server URL says so."""
    client = make_app().test_client()
    response = client.get("/auth/openapi.json", base_url="http://localhost/shop/")
    assert response.get_json()["servers"][0]["url"] == "/shop/auth"


def test_served_document_is_public_and_cacheable(make_app: Any) -> None:
    client = make_app().test_client()
    for headers in ({}, {"Authorization": "Bearer x.y.z"}, {"Authorization": "Basic eDp5"}):
        response = client.get("/auth/openapi.json", headers=headers)
        assert response.status_code == 200
        assert response.headers["Cache-Control"] == "public, max-age=300"
        assert "Pragma" not in response.headers
        assert response.headers["Content-Type"] == "application/json"
    etag = response.headers["ETag"]
    again = client.get("/auth/openapi.json", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.get_data() == b""
    head = client.head("/auth/openapi.json")
    assert head.status_code == 200
    assert head.headers["ETag"] == etag
    wrong = client.post("/auth/openapi.json")
    assert_error(wrong, 405, "method_not_allowed")
    assert wrong.headers["Allow"] == "GET, OPTIONS, HEAD"


def test_served_document_does_not_count_against_limits(make_app: Any) -> None:
    app = make_app(COCART_JWT_LIMIT_LOGIN_PER_IP="1 per minute")
    client = app.test_client()
    for _ in range(5):
        response = client.get("/auth/openapi.json")
        assert response.status_code == 200
        assert "X-RateLimit-Limit" not in response.headers


def test_route_can_be_turned_off(make_app: Any) -> None:
    client = make_app(COCART_JWT_OPENAPI_ROUTE=False).test_client()
    assert client.get("/auth/openapi.json").status_code == 404
    assert client.get("/auth/jwks.json").status_code == 200


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_route_switch_is_validated(make_app: Any, value: object) -> None:
    with pytest.raises(ConfigurationError, match="COCART_JWT_OPENAPI_ROUTE"):
        make_app(COCART_JWT_OPENAPI_ROUTE=value)


def test_each_call_returns_a_fresh_copy() -> None:
    first = openapi_document()
    pristine = copy.deepcopy(first)
    first["paths"].clear()
    assert openapi_document() == pristine


def test_document_matches_real_responses(shop_client: Any) -> None:
    """Hand-picked requests whose answers must validate against the document."""
    document = openapi_document()
    login = shop_client.post("/auth/login", json={"username": "demo", "password": "demo-password"})
    assert login.status_code == 200
    # The shop adds a "user" member through login_response_loader.
    assert login.json["user"]["username"] == "demo"
    _validate(document, "/login", "post", login)
    bearer = {"Authorization": f"Bearer {login.json['access_token']}"}
    checks = [
        ("/validate-token", "post", shop_client.post("/auth/validate-token", headers=bearer)),
        ("/sessions", "get", shop_client.get("/auth/sessions", headers=bearer)),
        ("/jwks.json", "get", shop_client.get("/auth/jwks.json")),
        (
            "/sessions/{session_id}",
            "delete",
            shop_client.delete("/auth/sessions/x", headers=bearer),
        ),
        ("/validate-token", "post", shop_client.post("/auth/validate-token")),
        ("/refresh-token", "post", shop_client.post("/auth/refresh-token", data="{")),
    ]
    refreshed = shop_client.post(
        "/auth/refresh-token", json={"refresh_token": login.json["refresh_token"]}
    )
    checks.append(("/refresh-token", "post", refreshed))
    new_bearer = {"Authorization": f"Bearer {refreshed.json['access_token']}"}
    checks.append(("/revoke-all", "post", shop_client.post("/auth/revoke-all", headers=new_bearer)))
    checks.append(("/revoke", "post", shop_client.post("/auth/revoke", headers=new_bearer)))
    other = AuthActions(shop_client).login("demo", "demo-password").json
    for body in (
        {"data": {"token": other["refresh_token"], "token_type_hint": "refresh_token"}},
        {"json": {"token": other["access_token"], "token_type_hint": "access_token"}},
        {"data": {"token": "not-a-token"}},
        {"data": {"token": ""}},
        {"data": "token=a&token=b", "content_type": "application/x-www-form-urlencoded"},
    ):
        checks.append(("/revoke", "post", shop_client.post("/auth/revoke", **body)))
    checks.append(("/openapi.json", "get", shop_client.get("/auth/openapi.json")))
    for path, method, response in checks:
        _validate(document, path, method, response)


def test_document_matches_cookie_mode_responses(shop_client: Any) -> None:
    """The shop runs in cookie mode: browser answers are documented too."""
    document = openapi_document()
    origin = {"Origin": "http://localhost"}
    login = shop_client.post(
        "/auth/login", json={"username": "demo", "password": "demo-password"}, headers=origin
    )
    assert login.status_code == 200
    assert "refresh_token" not in login.json
    assert "Set-Cookie" in document["paths"]["/login"]["post"]["responses"]["200"]["headers"]
    csrf = {**origin, "X-CSRF-Token": shop_client.get_cookie("cocart_csrf").value}
    checks = [
        ("/login", "post", login),
        ("/refresh-token", "post", shop_client.post("/auth/refresh-token", headers=origin)),
        ("/refresh-token", "post", shop_client.post("/auth/refresh-token", headers=csrf)),
        (
            "/login",
            "post",
            shop_client.post("/auth/login", json={}, headers={"Origin": "https://evil.example"}),
        ),
        ("/revoke", "post", shop_client.post("/auth/revoke", headers=csrf)),
        ("/refresh-token", "post", shop_client.post("/auth/refresh-token", headers=csrf)),
    ]
    assert [response.status_code for *_, response in checks] == [200, 403, 200, 403, 200, 401]
    for path, method, response in checks:
        _validate(document, path, method, response)


def test_document_matches_dpop_responses(shop_client: Any) -> None:
    """The shop runs with COCART_JWT_DPOP = "optional": bound answers are documented."""
    import re

    from tests.dpop_support import ProofKey

    document = openapi_document()
    key = ProofKey()
    login = shop_client.post(
        "/auth/login",
        json={"username": "demo", "password": "demo-password"},
        headers={"DPoP": key.proof("POST", "/auth/login")},
    )
    assert login.json["token_type"] == "DPoP"
    token = login.json["access_token"]

    def bound(method: str, path: str) -> dict[str, str]:
        proof = key.proof(method, path, access_token=token)
        return {"Authorization": f"DPoP {token}", "DPoP": proof}

    refresh = {"refresh_token": login.json["refresh_token"]}
    checks = [
        ("/login", "post", login),
        (
            "/sessions",
            "get",
            shop_client.get("/auth/sessions", headers=bound("GET", "/auth/sessions")),
        ),
        (
            "/validate-token",
            "post",
            shop_client.post("/auth/validate-token", headers=bound("POST", "/auth/validate-token")),
        ),
        ("/refresh-token", "post", shop_client.post("/auth/refresh-token", json=refresh)),
        (
            "/refresh-token",
            "post",
            shop_client.post(
                "/auth/refresh-token",
                json=refresh,
                headers={"DPoP": key.proof("POST", "/auth/refresh-token")},
            ),
        ),
    ]
    assert [response.status_code for *_, response in checks] == [200, 200, 200, 401, 200]
    assert checks[1][2].json["sessions"][0]["dpop_bound"] is True
    pattern = document["components"]["headers"]["WWWAuthenticate"]["schema"]["pattern"]
    assert re.match(pattern, checks[3][2].headers["WWW-Authenticate"])
    for path, method, response in checks:
        _validate(document, path, method, response)


def _validate(document: dict[str, Any], path: str, method: str, response: Any) -> None:
    responses = document["paths"][path][method]["responses"]
    status = str(response.status_code)
    assert status in responses, (path, status, response.json)
    spec = _resolve(document, responses[status])
    schema = {**spec["content"]["application/json"]["schema"], "components": {}}
    schema["components"] = document["components"]
    validator = jsonschema_rs.validator_for(schema)
    errors = [str(e) for e in validator.iter_errors(response.json)]
    assert not errors, (path, status, errors)


# -- contract run against the shop example ---------------------------------


#: A deliberately cheap password hash, so that hundreds of logins take no time.
_FAST_HASH = "pbkdf2:sha256:1"


@pytest.fixture
def shop(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Flask:
    monkeypatch.setattr(shop_module, "_DUMMY_HASH", generate_password_hash("x", _FAST_HASH))
    app = create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'shop.sqlite3'}",
            "COCART_JWT_SECRET_KEY": SECRET,
            "COCART_JWT_RATELIMIT_ENABLED": False,
        }
    )
    with app.app_context():
        shop_module.init_db()
        demo = db.session.execute(db.select(User).filter_by(username="demo")).scalar_one()
        demo.password_hash = generate_password_hash("demo-password", _FAST_HASH)
        db.session.commit()
    return app


@pytest.fixture
def shop_client(shop: Flask) -> Any:
    return shop.test_client()


def served_document() -> dict[str, Any]:
    """The document as the shop serves it, fetched through the test client.

    At collection time, because schemathesis builds the contract tests from
    it (its ``from_fixture`` needs pytest internals that pytest 9 removed).
    """
    app = create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": "sqlite://",
            "COCART_JWT_SECRET_KEY": SECRET,
            "COCART_JWT_RATELIMIT_ENABLED": False,
        }
    )
    response = app.test_client().get("/auth/openapi.json")
    cocart_jwt.get_service(app).close()
    assert response.status_code == 200, response.get_data()[:300]
    assert response.mimetype == "application/json"
    document: dict[str, Any] = response.get_json()
    return document


schema = schemathesis.openapi.from_dict(served_document())
#: No 5xx; every status, content type, header and body is the documented one.
CONTRACT_CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    unsupported_method,
    allow_header_conformance,
]


@schema.parametrize()
@hypothesis.settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=list(hypothesis.HealthCheck),
    derandomize=True,
    database=None,
)
def test_contract(case: Any, shop: Flask) -> None:
    response = case.call(app=shop)
    case.validate_response(response, checks=CONTRACT_CHECKS)
    if case.path in BEARER_PATHS:
        # Again with a live session, so that the success and 404 answers are checked too.
        headers = {"Authorization": f"Bearer {_live_access_token(shop)}"}
        response = case.call(app=shop, headers=headers)
        case.validate_response(response, checks=CONTRACT_CHECKS, headers=headers)


#: The operations that read a Bearer access token.
BEARER_PATHS = {"/validate-token", "/revoke", "/revoke-all", "/sessions", "/sessions/{session_id}"}


def test_contract_runs_on_the_served_document(shop_client: Any) -> None:
    served = shop_client.get("/auth/openapi.json").get_json()
    assert schema.raw_schema == served == openapi_document()


def _live_access_token(app: Flask) -> str:
    """A new session of the demo user, opened without the (slow) password check."""
    with app.test_request_context():
        user = db.session.execute(db.select(User).filter_by(username="demo")).scalar_one()
        return cocart_jwt.issue_tokens(user).access_token

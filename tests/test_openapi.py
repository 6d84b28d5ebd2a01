"""The shipped OpenAPI 3.1 document: valid, complete, and true of the running routes.

The contract run sends schemathesis-generated requests (valid and invalid
bodies, random Bearer values, random session ids) to the shop example and
checks that no answer is a server error and that every answer is documented
(status, content type and body schema).
"""

from __future__ import annotations

import copy
from typing import Any

import hypothesis
import jsonschema_rs
import pytest
import schemathesis
from flask import Flask
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from werkzeug.security import generate_password_hash

from examples import shop as shop_module
from examples.shop import User, cocart_jwt, create_app, db
from flask_cocart_jwt.openapi import openapi_document
from tests.conftest import SECRET, TOKEN_FIELDS

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
}
ERROR_STATUSES = {"400", "401", "404", "429", "503"}


def _resolve(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = document
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


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
            if path != "/jwks.json":
                assert {"400", "401", "429", "503"} <= statuses, (method, path)
                assert statuses <= {"200"} | ERROR_STATUSES
            for status in statuses - {"200"}:
                response = _resolve(document, operation["responses"][status])
                body = response["content"]["application/json"]["schema"]
                assert body["allOf"][0] == {"$ref": "#/components/schemas/Error"}
    assert "404" in document["paths"]["/sessions/{session_id}"]["delete"]["responses"]
    error = document["components"]["schemas"]["Error"]
    assert error["required"] == ["error", "message"]


def test_security_and_request_bodies() -> None:
    document = openapi_document()
    assert document["components"]["securitySchemes"]["bearerAuth"] == {
        **document["components"]["securitySchemes"]["bearerAuth"],
        "type": "http",
        "scheme": "bearer",
    }
    paths = document["paths"]
    for path in ("/validate-token", "/revoke-all", "/sessions", "/sessions/{session_id}"):
        (operation,) = paths[path].values()
        assert operation["security"] == [{"bearerAuth": []}], path
    login = paths["/login"]["post"]["requestBody"]
    assert login["required"] is True
    assert set(login["content"]) >= {"application/json", "application/x-www-form-urlencoded"}
    credentials = document["components"]["schemas"]["Credentials"]
    assert credentials["required"] == ["username", "password"]
    assert paths["/refresh-token"]["post"]["requestBody"]["required"] is True
    assert paths["/revoke"]["post"]["requestBody"]["required"] is False
    token = document["components"]["schemas"]["TokenResponse"]
    assert set(token["required"]) == TOKEN_FIELDS


def test_url_prefix_sets_the_server() -> None:
    assert openapi_document()["servers"][0]["url"] == "/auth"
    assert openapi_document(url_prefix="/api/v1/auth")["servers"][0]["url"] == "/api/v1/auth"


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


schema = schemathesis.openapi.from_dict(openapi_document())
#: No 5xx; every status, content type, header and body is the documented one.
CONTRACT_CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
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


def _live_access_token(app: Flask) -> str:
    """A new session of the demo user, opened without the (slow) password check."""
    with app.test_request_context():
        user = db.session.execute(db.select(User).filter_by(username="demo")).scalar_one()
        return cocart_jwt.issue_tokens(user).access_token

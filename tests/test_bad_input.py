"""Hardening: malformed, ill-typed and oversized input gives a JSON 400/401, never a 500."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import DOCUMENTED_ERRORS as DOCUMENTED
from tests.conftest import assert_error
from tests.support import close_app


def post_raw(client: FlaskClient, path: str, data: str | bytes, content_type: str) -> Any:
    return client.post(path, data=data, content_type=content_type)


BAD_JSON_BODIES = [
    "",
    "{",
    "{'username': 'alice'}",
    '{"username": "alice", "password": "wonderland"',
    "nul",
    "NaN",
    "[]",
    '["alice", "wonderland"]',
    '"alice"',
    "1",
    "null",
    "true",
    "{}",
    '{"username": "alice"}',
    '{"password": "wonderland"}',
    '{"username": "", "password": "wonderland"}',
    '{"username": "alice", "password": ""}',
    '{"username": 1, "password": "wonderland"}',
    '{"username": "alice", "password": 1234}',
    '{"username": ["alice"], "password": "wonderland"}',
    '{"username": null, "password": "wonderland"}',
    '{"username": true, "password": "wonderland"}',
    '{"username": {"$ne": null}, "password": "wonderland"}',
    '{"username": "alice", "password": 1.5}',
    '{"username": "alice", "password": NaN}',
    '{"username": "\\ud800", "password": "wonderland"}',
    '{"username": "alice", "password": "\\udfff"}',
    '{"username": "alice", "password": ' + "1" * 5000 + "}",
    "\ufeff" + '{"username": "alice", "password": "wonderland"}',
    json.dumps({"username": "a" * 10_000, "password": "wonderland"}),
    json.dumps({"username": "alice", "password": "p" * 2000}),
    json.dumps({"username": "alice", "password": "wonderland", "pad": "x" * 17_000}),
    "[" * 100_000,
    "[" * 15_000,
    '{"a":' * 3000 + "1" + "}" * 3000,
]


@pytest.mark.parametrize("body", BAD_JSON_BODIES, ids=lambda b: repr(b[:40]))
def test_login_bad_json(client: FlaskClient, body: str) -> None:
    assert_error(post_raw(client, "/auth/login", body, "application/json"), 400, "invalid_request")


def test_login_invalid_utf8(client: FlaskClient) -> None:
    body = b'{"username": "\xff\xfe", "password": "wonderland"}'
    assert_error(post_raw(client, "/auth/login", body, "application/json"), 400, "invalid_request")


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/xml", "application/octet-stream", "json", ""]
)
def test_login_wrong_content_type(client: FlaskClient, content_type: str) -> None:
    body = '{"username": "alice", "password": "wonderland"}'
    assert_error(post_raw(client, "/auth/login", body, content_type), 400, "invalid_request")


def test_login_no_body_at_all(client: FlaskClient) -> None:
    assert_error(client.post("/auth/login"), 400, "invalid_request")


@pytest.mark.parametrize(
    "form",
    [
        {},
        {"username": "alice"},
        {"username": "", "password": "wonderland"},
        {"username": "a" * 10_000, "password": "wonderland"},
        {"username": "alice", "password": "wonderland", "pad": "x" * 17_000},
    ],
)
@pytest.mark.parametrize(
    "content_type", ["application/x-www-form-urlencoded", "multipart/form-data"]
)
def test_login_bad_form(client: FlaskClient, form: dict[str, str], content_type: str) -> None:
    assert_error(
        client.post("/auth/login", data=form, content_type=content_type), 400, "invalid_request"
    )


def test_login_username_as_file_upload(client: FlaskClient) -> None:
    import io

    data = {"username": (io.BytesIO(b"alice"), "u.txt"), "password": "wonderland"}
    response = client.post("/auth/login", data=data, content_type="multipart/form-data")
    assert_error(response, 400, "invalid_request")


def test_login_huge_basic(client: FlaskClient) -> None:
    raw = base64.b64encode(b"a" * 10_000 + b":wonderland").decode()
    response = client.post("/auth/login", headers={"Authorization": f"Basic {raw}"})
    assert_error(response, 400, "invalid_request")


@pytest.mark.parametrize(
    "body",
    [
        "",
        "{",
        "[]",
        "{}",
        '{"refresh_token": null}',
        '{"refresh_token": 1}',
        '{"refresh_token": ["rt_x"]}',
        '{"refresh_token": {"$gt": ""}}',
        '{"refresh_token": true}',
        '{"refresh_token": ""}',
        json.dumps({"refresh_token": "rt_" + "a" * 10_000}),
        "[" * 15_000,
        "[" * 100_000,
    ],
    ids=lambda b: repr(b[:40]),
)
def test_refresh_bad_json(client: FlaskClient, body: str) -> None:
    response = post_raw(client, "/auth/refresh-token", body, "application/json")
    assert_error(response, 400, "invalid_request")


@pytest.mark.parametrize(
    "token", ["x", "rt_", "rt_short", "rt_" + "A" * 43, "rt_é" + "a" * 40, "RT_" + "a" * 43]
)
def test_refresh_unknown_token(client: FlaskClient, token: str) -> None:
    response = client.post("/auth/refresh-token", json={"refresh_token": token})
    assert_error(response, 401, "invalid_refresh_token")


def test_refresh_wrong_content_type(client: FlaskClient) -> None:
    response = client.post("/auth/refresh-token", data={"refresh_token": "rt_" + "a" * 43})
    assert_error(response, 400, "invalid_request")


@pytest.mark.parametrize(
    "body",
    ["{", "[]", '{"refresh_token": 1}', '{"refresh_token": null}', "[" * 15_000],
    ids=lambda b: repr(b[:40]),
)
def test_revoke_bad_json(client: FlaskClient, body: str) -> None:
    response = post_raw(client, "/auth/revoke", body, "application/json")
    assert_error(response, 400, "invalid_request")


def test_revoke_unknown_refresh_token_is_ok(client: FlaskClient) -> None:
    for token in ("rt_" + "a" * 43, "not-a-refresh-token"):
        response = client.post("/auth/revoke", json={"refresh_token": token})
        assert response.status_code == 200
        assert response.json == {"revoked": True}
    assert_error(client.post("/auth/revoke"), 401, "missing_token")


@pytest.mark.parametrize(
    "header",
    [
        "Bearer " + "a" * 100_000,
        "Bearer " + "[" * 5000,
        "Bearer \x7f\x00",
        "Bearer eyJ" + "." * 3,
        "Bearer " + ".".join(["eyJhbGciOiJub25lIn0"] * 3),
    ],
)
def test_protected_routes_bad_bearer(client: FlaskClient, header: str) -> None:
    for path in ("/auth/validate-token", "/auth/revoke", "/auth/revoke-all"):
        assert_error(client.post(path, headers={"Authorization": header}), 401, "invalid_token")
    assert_error(
        client.get("/auth/sessions", headers={"Authorization": header}), 401, "invalid_token"
    )


# -- property test -----------------------------------------------------------

JSONISH = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=40)
    | st.sampled_from(["alice", "wonderland", "rt_" + "a" * 43, "Bearer x"]),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "username": JSONISH,
        "password": JSONISH,
        "refresh_token": JSONISH,
    },
)
HEADER_TEXT = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=60
)
BODIES = st.one_of(
    FIELDS.map(json.dumps),
    JSONISH.map(json.dumps),
    st.binary(max_size=200),
    st.text(max_size=200),
    st.integers(0, 20_000).map(lambda n: "[" * n),
)
CONTENT_TYPES = (
    st.sampled_from(
        [
            "application/json",
            "application/json; charset=latin-1",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=xyz",
            "multipart/form-data",
            "text/plain",
            "",
        ]
    )
    | HEADER_TEXT
)
AUTHORIZATION = st.one_of(
    st.none(),
    HEADER_TEXT,
    HEADER_TEXT.map(lambda t: "Bearer " + t),
    HEADER_TEXT.map(lambda t: "Basic " + t),
    st.binary(max_size=40).map(lambda b: "Basic " + base64.b64encode(b).decode()),
    st.tuples(HEADER_TEXT, HEADER_TEXT).map(
        lambda up: "Basic " + base64.b64encode(f"{up[0]}:{up[1]}".encode()).decode()
    ),
)
PATHS = st.sampled_from(
    ["/auth/login", "/auth/refresh-token", "/auth/validate-token", "/auth/revoke"]
)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    path=PATHS,
    body=BODIES,
    content_type=CONTENT_TYPES,
    authorization=AUTHORIZATION,
    extra=st.dictionaries(
        st.sampled_from(["Content-Length", "X-Forwarded-For", "Accept", "User-Agent"]),
        HEADER_TEXT,
        max_size=2,
    ),
)
def test_random_requests_give_documented_answers(
    client: FlaskClient,
    path: str,
    body: str | bytes,
    content_type: str,
    authorization: str | None,
    extra: dict[str, str],
) -> None:
    headers = {k: v for k, v in extra.items() if k != "Content-Length" or v.isdigit()}
    if authorization is not None:
        headers["Authorization"] = authorization
    response = client.post(path, data=body, content_type=content_type, headers=headers)
    assert response.is_json, (response.status_code, response.get_data()[:200])
    payload = response.get_json()
    assert isinstance(payload, dict)
    if response.status_code == 200:
        assert "error" not in payload
        return
    assert response.status_code in DOCUMENTED, (response.status_code, payload)
    assert payload["error"] in DOCUMENTED[response.status_code], payload
    assert isinstance(payload["message"], str)
    assert payload["message"]
    if response.status_code == 401:
        assert response.headers["WWW-Authenticate"].startswith("Bearer ")


@pytest.mark.parametrize(
    ("username", "user_agent"),
    [("alice", "agent\x00with-nul"), ("alice", "é" * 400), ("😀 ünïcødé", "ok")],
)
def test_odd_user_agent_and_identity_on_every_backend(
    make_app: Callable[..., Flask], database_uri: str, username: str, user_agent: str
) -> None:
    app = make_app(COCART_JWT_DATABASE_URI=database_uri, COCART_JWT_RATELIMIT_ENABLED=False)
    try:
        _odd_user_agent_and_identity(app, username, user_agent)
    finally:
        close_app(app)


def _odd_user_agent_and_identity(app: Flask, username: str, user_agent: str) -> None:
    app.extensions["cocart_jwt"].register_credentials_checker(lambda u, p: u)
    client = app.test_client()
    headers = {"User-Agent": user_agent}
    login = client.post(
        "/auth/login", json={"username": username, "password": "x"}, headers=headers
    )
    assert login.status_code == 200, login.get_data()[:300]
    tokens = login.get_json()
    bearer = {"Authorization": f"Bearer {tokens['access_token']}", **headers}
    listed = client.get("/auth/sessions", headers=bearer).get_json()["sessions"]
    assert [s["user_agent"] for s in listed] == [user_agent.replace("\x00", "")[:255]]
    refreshed = client.post(
        "/auth/refresh-token", json={"refresh_token": tokens["refresh_token"]}, headers=headers
    )
    assert refreshed.status_code == 200
    assert client.post("/auth/revoke-all", headers=bearer).get_json() == {"revoked": 1}

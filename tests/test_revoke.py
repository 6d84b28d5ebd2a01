"""``POST /revoke`` in RFC 7009's form: ``token`` and ``token_type_hint``, as JSON or a form.

RFC 7009 section 2.2: the answer is 200 whether the token was revoked or was
invalid to begin with; section 2.1: an unknown ``token_type_hint`` is ignored.
The 0.1 forms (``refresh_token``, or the Bearer access token) keep working.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from flask.testing import FlaskClient

from tests.conftest import AuthActions, assert_error
from tests.support import AppFactory

Send = Callable[..., Any]
HINTS = [None, "refresh_token", "access_token", "id_token", ""]


def _send(client: FlaskClient, encoding: str, fields: dict[str, str], **kwargs: Any) -> Any:
    if encoding == "json":
        return client.post("/auth/revoke", json=fields, **kwargs)
    return client.post("/auth/revoke", data=fields, **kwargs)  # url-encoded form


def _alive(auth: AuthActions, tokens: dict[str, Any]) -> bool:
    return bool(auth.get("/me", tokens["access_token"]).status_code == 200)


@pytest.fixture(params=["json", "form"])
def encoding(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.mark.parametrize("kind", ["refresh_token", "access_token"])
@pytest.mark.parametrize("hint", HINTS)
def test_token_of_either_kind_with_any_hint(
    auth: AuthActions, encoding: str, kind: str, hint: str | None
) -> None:
    """The kind is told by the token itself: a wrong or unknown hint changes nothing."""
    target, other = auth.tokens(), auth.tokens()
    fields = {"token": target[kind]}
    if hint is not None:
        fields["token_type_hint"] = hint
    response = _send(auth.client, encoding, fields)
    assert response.status_code == 200, response.json
    assert response.json == {"revoked": True}
    assert response.headers["Cache-Control"] == "no-store"
    assert_error(auth.get("/me", target["access_token"]), 401, "session_revoked")
    assert_error(auth.refresh(target["refresh_token"]), 401, "invalid_refresh_token")
    assert _alive(auth, other)


def test_json_null_hint_is_no_hint(auth: AuthActions) -> None:
    tokens = auth.tokens()
    body = {"token": tokens["refresh_token"], "token_type_hint": None}
    assert auth.client.post("/auth/revoke", json=body).json == {"revoked": True}
    assert not _alive(auth, tokens)


def test_refresh_token_on_every_backend(new_app: AppFactory) -> None:
    auth = AuthActions(new_app().test_client())
    target, other = auth.tokens(), auth.tokens()
    response = _send(auth.client, "form", {"token": target["refresh_token"]})
    assert response.json == {"revoked": True}
    assert_error(auth.refresh(target["refresh_token"]), 401, "invalid_refresh_token")
    assert _alive(auth, other)


def test_invalid_tokens_answer_200_and_revoke_nothing(auth: AuthActions, encoding: str) -> None:
    """RFC 7009 section 2.2: an invalid token is not an error, and nothing happens."""
    tokens = auth.tokens()
    access = tokens["access_token"]
    bobs = auth.tokens("bob")
    head, payload, signature = access.split(".")
    forged_signature = ("A" if signature[0] != "A" else "B") + signature[1:]
    for value in (
        "rt_" + "a" * 43,  # the shape of a refresh token, unknown
        "not-a-token",
        f"{head}.{payload}.{forged_signature}",
        # bob's claims under alice's signature
        f"{head}.{bobs['access_token'].split('.')[1]}.{signature}",
        tokens["refresh_token"][:-1],
        " " + tokens["refresh_token"],
        access + "x",
        "\U0001f600",
    ):
        response = _send(auth.client, encoding, {"token": value})
        assert response.status_code == 200, (value, response.json)
        assert response.json == {"revoked": True}
        assert value not in response.get_data(as_text=True)
    assert _alive(auth, tokens)
    assert _alive(auth, bobs)


def test_expired_access_token_revokes_nothing(auth: AuthActions, encoding: str) -> None:
    """Only a valid access token logs out; for an expired one, send the refresh token."""
    tokens = auth.tokens()
    with time_machine.travel(timedelta(minutes=16)):
        assert_error(auth.get("/me", tokens["access_token"]), 401, "token_expired")
        response = _send(auth.client, encoding, {"token": tokens["access_token"]})
        assert response.status_code == 200
        assert response.json == {"revoked": True}
        assert auth.refresh(tokens["refresh_token"]).status_code == 200


def test_already_revoked_token_is_200(auth: AuthActions, encoding: str) -> None:
    tokens = auth.tokens()
    for kind in ("refresh_token", "access_token", "refresh_token"):
        response = _send(auth.client, encoding, {"token": tokens[kind]})
        assert response.status_code == 200
        assert response.json == {"revoked": True}


def test_token_in_the_body_wins_over_the_bearer_header(auth: AuthActions, encoding: str) -> None:
    mine, target = auth.tokens(), auth.tokens()
    response = _send(
        auth.client,
        encoding,
        {"token": target["refresh_token"]},
        headers={"Authorization": f"Bearer {mine['access_token']}"},
    )
    assert response.status_code == 200
    assert not _alive(auth, target)
    assert _alive(auth, mine)


def test_refresh_token_field_as_a_form(auth: AuthActions) -> None:
    """The 0.1 field works in the form encoding too."""
    tokens = auth.tokens()
    response = _send(auth.client, "form", {"refresh_token": tokens["refresh_token"]})
    assert response.json == {"revoked": True}
    assert not _alive(auth, tokens)


def test_empty_body_still_revokes_by_bearer(auth: AuthActions, encoding: str) -> None:
    tokens = auth.tokens()
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert_error(_send(auth.client, encoding, {}), 401, "missing_token")
    response = _send(auth.client, encoding, {}, headers=bearer)
    assert response.json == {"revoked": True}
    assert not _alive(auth, tokens)


@pytest.mark.parametrize(
    "fields",
    [
        {"token": ""},
        {"token": "", "token_type_hint": "refresh_token"},
        {"token": "rt_" + "a" * 43, "refresh_token": "rt_" + "a" * 43},
    ],
    ids=["empty", "empty-with-hint", "token-and-refresh_token"],
)
def test_malformed_requests_are_400(client: FlaskClient, encoding: str, fields: Any) -> None:
    assert_error(_send(client, encoding, fields), 400, "invalid_request")


@pytest.mark.parametrize(
    "body",
    [
        {"token": None},
        {"token": 5},
        {"token": ["rt_" + "a" * 43]},
        {"token": "rt_" + "a" * 43, "token_type_hint": 1},
        {"token": "rt_" + "a" * 43, "token_type_hint": ["refresh_token"]},
    ],
    ids=repr,
)
def test_ill_typed_json_fields_are_400(client: FlaskClient, body: Any) -> None:
    assert_error(client.post("/auth/revoke", json=body), 400, "invalid_request")


@pytest.mark.parametrize(
    "form",
    [
        "token=a&token=b",
        "token=a&token_type_hint=refresh_token&token_type_hint=access_token",
        "refresh_token=rt_a&refresh_token=rt_b",
    ],
)
def test_repeated_form_fields_are_400(client: FlaskClient, form: str) -> None:
    """RFC 6749 section 3.1: a parameter is sent at most once."""
    response = client.post(
        "/auth/revoke", data=form, content_type="application/x-www-form-urlencoded"
    )
    assert_error(response, 400, "invalid_request")


def test_oversized_form_is_400(client: FlaskClient) -> None:
    response = client.post("/auth/revoke", data={"token": "a" * 20_000})
    assert_error(response, 400, "invalid_request")


def test_form_post_is_rate_limited(make_app: Callable[..., Any]) -> None:
    app = make_app(COCART_JWT_LIMIT_REVOKE_PER_IP="2 per minute")
    client = app.test_client()
    for _ in range(2):
        assert _send(client, "form", {"token": "rt_" + "a" * 43}).status_code == 200
    assert_error(_send(client, "form", {"token": "rt_" + "a" * 43}), 429, "rate_limited")

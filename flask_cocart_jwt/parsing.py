"""Strict reading of request bodies for the token routes.

Werkzeug's ``get_json`` lets a deeply nested body escape as a
``RecursionError`` (a 500); everything here ends in
:class:`~flask_cocart_jwt.exceptions.InvalidRequest` instead.
"""

from __future__ import annotations

import json
from typing import Any

from flask import request
from werkzeug.datastructures import Authorization

from .exceptions import InvalidRequest

#: The largest request body the token routes read.
MAX_BODY_BYTES = 16 * 1024
#: The longest username and password accepted.
MAX_USERNAME_CHARS = 255
MAX_PASSWORD_CHARS = 1024


def json_body(*, required: bool = True) -> dict[str, Any]:
    """The request's JSON object body.

    :param required: refuse a request without a JSON body; otherwise an
        empty body gives ``{}``.
    :raises InvalidRequest: not JSON, not an object, too large, or malformed.
    """
    length = request.content_length
    if length is not None and length > MAX_BODY_BYTES:
        raise InvalidRequest("The request body is too large.")
    data = request.get_data(cache=True)
    if len(data) > MAX_BODY_BYTES:
        raise InvalidRequest("The request body is too large.")
    if not data and not required:
        return {}
    if not request.is_json:
        raise InvalidRequest("The request body must be JSON (Content-Type: application/json).")
    try:
        body = json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise InvalidRequest("The request body is not valid JSON.") from exc
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    return body


def text_field(body: dict[str, Any], name: str, *, max_chars: int) -> str:
    """A required, non-empty string field of at most ``max_chars`` characters.

    Strings that cannot be encoded as UTF-8 (lone surrogates such as
    ``"\\ud800"`` in JSON) are refused, so that callbacks and rate-limit keys
    only ever see text that can be hashed and stored.
    """
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise InvalidRequest(f"The field '{name}' is required and must be a string.")
    if len(value) > max_chars:
        raise InvalidRequest(f"The field '{name}' is too long.")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidRequest(f"The field '{name}' is not valid text.") from None
    return value


def _basic_authorization() -> Authorization | None:
    """The request's HTTP Basic credentials, or ``None``.

    Werkzeug raises ``ValueError`` for non-ASCII Basic credentials; that is
    malformed input here, not a server error.
    """
    try:
        auth = request.authorization
    except ValueError as exc:
        raise InvalidRequest("The HTTP Basic credentials are malformed.") from exc
    return auth if auth is not None and auth.type == "basic" else None


def login_credentials() -> tuple[str, str]:
    """The username and password of a login: JSON, form fields, or HTTP Basic.

    :raises InvalidRequest: malformed input.
    """
    length = request.content_length
    if length is not None and length > MAX_BODY_BYTES:
        raise InvalidRequest("The request body is too large.")
    if request.is_json:
        body = json_body()
    elif request.mimetype in (
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ):
        body = request.form.to_dict()
    elif (auth := _basic_authorization()) is not None:
        body = {"username": auth.username, "password": auth.password}
    else:
        raise InvalidRequest("Send the username and password as JSON, form fields or HTTP Basic.")
    username = text_field(body, "username", max_chars=MAX_USERNAME_CHARS)
    password = text_field(body, "password", max_chars=MAX_PASSWORD_CHARS)
    return username, password

"""How tokens and credentials travel: reading them from requests.

The access token comes from the configured header (``Authorization: Bearer``);
refresh tokens and login credentials from strictly read request bodies.
A body is read at most :data:`MAX_BODY_BYTES` + 1 bytes at a time from the
stream, so that a chunked (``Transfer-Encoding: chunked``) body without a
``Content-Length`` is refused without being held in memory; Werkzeug's
``get_data`` and ``form`` would read it whole. Werkzeug's ``get_json`` lets a
deeply nested body escape as a ``RecursionError`` (a 500); everything here
ends in :class:`~flask_cocart_jwt.exceptions.InvalidRequest` instead.
"""

from __future__ import annotations

import io
import json
import unicodedata
from collections.abc import Mapping
from typing import IO, Any, Literal, NamedTuple

from flask import request
from werkzeug.datastructures import Authorization

from .clients import Client
from .config import Settings
from .exceptions import InvalidRequest
from .refresh_tokens import MAX_REFRESH_TOKEN_CHARS

#: The largest request body the token routes read.
MAX_BODY_BYTES = 16 * 1024
#: The longest username and password accepted.
MAX_USERNAME_CHARS = 255
MAX_PASSWORD_CHARS = 1024
_FORM = "application/x-www-form-urlencoded"


def access_token_from_request(settings: Settings) -> str | None:
    """The access token of the current request, or ``None`` if none was sent.

    A header with another scheme (e.g. ``Basic``) or a ``Bearer`` header with
    nothing after it counts as no token.
    """
    return access_token_from_environ(request.environ, settings)


def access_token_from_environ(environ: Mapping[str, Any], settings: Settings) -> str | None:
    """Like :func:`access_token_from_request`, from a WSGI ``environ``.

    The per-request verifier holds the request already; reading its
    ``environ`` directly saves a trip through the ``request`` proxy.
    """
    value = environ.get(settings.header_environ_key)
    if not value:
        return None
    scheme, _, token = value.partition(" ")
    if scheme.lower() != settings.header_type.lower():
        return None
    token = token.strip()
    return token or None


def request_client() -> Client:
    """The client of the current request (``remote_addr``, ``User-Agent``)."""
    return Client(request.remote_addr, request.user_agent.string)


class _BoundedBody(io.BytesIO):
    """The request body once :func:`request_body` has read it within the cap."""


def request_body() -> bytes:
    """The request body, read at most :data:`MAX_BODY_BYTES` + 1 bytes from the stream.

    The bytes read stay available to the rest of the request:
    ``request.get_data()``, ``request.get_json()`` and ``request.form`` (the
    app's callbacks may use them) see the same body, never the unread rest of
    the stream.

    :raises InvalidRequest: the body is larger than :data:`MAX_BODY_BYTES`,
        whether ``Content-Length`` says so or the body is chunked.
    """
    if not isinstance(request.stream, _BoundedBody):
        length = request.content_length
        if length is not None and length > MAX_BODY_BYTES:
            raise InvalidRequest("The request body is too large.")
        # Werkzeug's cached ``stream`` property takes an assignment: from now
        # on the request's body is these bytes.
        request.stream = _BoundedBody(_read_at_most(request.stream, MAX_BODY_BYTES + 1))
    # Cached by Werkzeug for request.form and request.get_json(); already in
    # memory if something read the body before (its size is checked below).
    data = request.get_data(cache=True)
    if len(data) > MAX_BODY_BYTES:
        raise InvalidRequest("The request body is too large.")
    return data


def _read_at_most(stream: IO[bytes], limit: int) -> bytes:
    """Up to ``limit`` bytes of ``stream``: fewer only at its end."""
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = stream.read(limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def json_body(*, required: bool = True) -> dict[str, Any]:
    """The request's JSON object body.

    :param required: refuse a request without a JSON body; otherwise an
        empty body gives ``{}``.
    :raises InvalidRequest: not JSON, not an object, too large, or malformed.
    """
    data = request_body()
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


def form_body(fields: tuple[str, ...] = ()) -> dict[str, str]:
    """The request's form fields (``application/x-www-form-urlencoded`` or
    ``multipart/form-data``), parsed from a body read within the cap.

    File parts are left out.

    :param fields: the fields that may be sent at most once (RFC 6749
        section 3.1); the other fields are kept as their first value.
    :raises InvalidRequest: too large, or one of ``fields`` repeated.
    """
    request_body()
    form = request.form
    for name in fields:
        if len(form.getlist(name)) > 1:
            raise InvalidRequest(f"The field '{name}' must be sent once.")
    return form.to_dict()


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


def username_field(body: dict[str, Any]) -> str:
    """The ``username`` field: :func:`text_field`, without control characters.

    NUL, the other C0 and C1 controls and DEL are refused before any callback
    sees the name: PostgreSQL cannot store a NUL in a ``text`` column (psycopg
    raises ``DataError``), and no username needs the others.
    """
    username = text_field(body, "username", max_chars=MAX_USERNAME_CHARS)
    if any(unicodedata.category(char) == "Cc" for char in username):
        raise InvalidRequest("The field 'username' must not contain control characters.")
    return username


def login_credentials() -> tuple[str, str]:
    """The username and password of a login: JSON, form fields, or HTTP Basic.

    A body that is not read (HTTP Basic) is still refused when its
    ``Content-Length`` is over the cap.

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
        body = form_body()
    elif (auth := _basic_authorization()) is not None:
        body = {"username": auth.username, "password": auth.password}
    else:
        raise InvalidRequest("Send the username and password as JSON, form fields or HTTP Basic.")
    username = username_field(body)
    password = text_field(body, "password", max_chars=MAX_PASSWORD_CHARS)
    return username, password


class Revocation(NamedTuple):
    """What a ``POST /revoke`` names: the field it came in and the token."""

    #: ``"token"`` (RFC 7009) or ``"refresh_token"`` (the 0.1 field).
    field: Literal["token", "refresh_token"]
    token: str


def revocation_request() -> Revocation | None:
    """The token a ``POST /revoke`` names, or ``None`` to revoke by the Bearer token.

    The body is JSON or a url-encoded form (RFC 7009 section 2.1) with
    ``token`` and an optional ``token_type_hint``, or with ``refresh_token``.
    The hint is checked and then not needed: the form of a token tells its
    kind. An unknown hint is ignored, as RFC 7009 says.

    :raises InvalidRequest: malformed input, an empty ``token``, or both
        ``token`` and ``refresh_token``.
    """
    if request.mimetype == _FORM:
        body: dict[str, Any] = form_body(("token", "token_type_hint", "refresh_token"))
    else:
        body = json_body(required=False)
    if "token" in body:
        if "refresh_token" in body:
            raise InvalidRequest("Send the field 'token' or 'refresh_token', not both.")
        token = body["token"]
        if not isinstance(token, str) or not token:
            raise InvalidRequest("The field 'token' is required and must be a string.")
        hint = body.get("token_type_hint")
        if hint is not None and not isinstance(hint, str):
            raise InvalidRequest("The field 'token_type_hint' must be a string.")
        return Revocation("token", token)
    if "refresh_token" in body:
        token = body["refresh_token"]
        if not isinstance(token, str) or not token or len(token) > MAX_REFRESH_TOKEN_CHARS:
            raise InvalidRequest("The field 'refresh_token' must be a string.")
        return Revocation("refresh_token", token)
    return None

"""CSRF defence of cookie mode: the origin check and the session-bound CSRF token.

Every request that reads or sets a token cookie passes two checks:

1. **origin**: its ``Origin`` header is the API's own origin (the request's
   scheme and ``Host``) or one of ``COCART_JWT_CSRF_TRUSTED_ORIGINS``;
   ``null``, a missing ``Origin`` and anything else are refused. Login runs
   this check too (login CSRF).
2. **token** (all but login): the CSRF header equals the CSRF cookie, and the
   value is ``<session id>.<nonce>.<mac>``, where ``mac`` is an HMAC of the
   session id and the nonce with a key derived from the signing secret.
   Both comparisons are constant-time. The caller then checks that the
   session it is about to use is the token's (:func:`check_bound`), so a
   CSRF token of one session never passes for another.

A failure is :class:`~flask_cocart_jwt.exceptions.CsrfFailed` (``403
csrf_failed``), raised before anything is rotated, revoked or set.
"""

from __future__ import annotations

import hmac
import secrets
from typing import NamedTuple

from flask import request

from .config import Settings
from .cookie_settings import CookieSettings, canonical_origin
from .cookies import access_cookie, csrf_cookie
from .exceptions import CsrfFailed
from .keys import b64url
from .transport import access_token_from_request

#: The methods that need the CSRF checks when the access cookie authenticates them.
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: The longest CSRF token looked at (a session id, a nonce and a MAC are ~100).
MAX_CSRF_CHARS = 256
_LABEL = "csrf-token"


def own_origin() -> str | None:
    """The origin of the current request's own URL (scheme and ``Host``).

    Behind a proxy, ``ProxyFix`` must set the scheme and host the browser
    used, as for every URL the app builds.
    """
    return canonical_origin(f"{request.scheme}://{request.host}")


def check_origin(cookies: CookieSettings) -> None:
    """Refuse a request whose ``Origin`` is neither the API's own nor trusted.

    :raises CsrfFailed: a missing, ``null`` or foreign ``Origin``.
    """
    origin = request.environ.get("HTTP_ORIGIN")
    if not origin or origin == "null":
        raise CsrfFailed(reason="origin")
    if origin not in cookies.trusted_origins and origin != own_origin():
        raise CsrfFailed(reason="origin")


def _mac(settings: Settings, session_id: str, nonce: str) -> str:
    data = f"{session_id}.{nonce}".encode()
    return b64url(settings.keyring.derive(_LABEL, data))


def new_csrf_token(settings: Settings, session_id: str) -> str:
    """A fresh CSRF token bound to ``session_id``: ``<session id>.<nonce>.<mac>``."""
    nonce = secrets.token_urlsafe(16)
    return f"{session_id}.{nonce}.{_mac(settings, session_id, nonce)}"


def _bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


class CsrfToken(NamedTuple):
    """A CSRF token that passed :func:`check_csrf_token`."""

    #: The session the token is bound to.
    session_id: str
    #: The token itself, as sent in the cookie and the header.
    value: str


def check_csrf_token(settings: Settings, cookies: CookieSettings) -> CsrfToken:
    """Check the request's CSRF header against its CSRF cookie.

    :returns: the token and the session id it is bound to; the caller checks
        that against the session it uses with :func:`check_bound`.
    :raises CsrfFailed: a missing, unequal or forged token.
    """
    header = request.environ.get(cookies.csrf_environ_key)
    cookie = csrf_cookie(cookies)
    if not header or not cookie or len(header) > MAX_CSRF_CHARS or len(cookie) > MAX_CSRF_CHARS:
        raise CsrfFailed(reason="token")
    if not hmac.compare_digest(_bytes(header), _bytes(cookie)):
        raise CsrfFailed(reason="token")
    parts = cookie.split(".")
    if len(parts) != 3:
        raise CsrfFailed(reason="token")
    session_id, nonce, mac = parts
    if not hmac.compare_digest(_bytes(mac), _mac(settings, session_id, nonce).encode()):
        raise CsrfFailed(reason="token")
    return CsrfToken(session_id, cookie)


def check_bound(token_session_id: str, session_id: str) -> None:
    """Refuse a CSRF token of another session than ``session_id``.

    :raises CsrfFailed: the sessions differ.
    """
    if not hmac.compare_digest(_bytes(token_session_id), _bytes(session_id)):
        raise CsrfFailed(reason="session")


def access_cookie_token(settings: Settings) -> tuple[str, str | None] | None:
    """The access token of the access cookie (``COCART_JWT_ACCESS_COOKIE``).

    Read only when no ``Authorization`` header was sent. An unsafe method
    (``POST``, ``PUT``, ``PATCH``, ``DELETE``) must pass both CSRF checks.

    :returns: ``None`` without an access cookie; else the token and, for an
        unsafe method, the session id its CSRF token is bound to (check it
        against the token's ``sid`` with :func:`check_bound`).
    :raises CsrfFailed: an unsafe method failed a check.
    """
    cookies = settings.cookies
    if cookies is None:
        return None
    token = access_cookie(cookies)
    if token is None:
        return None
    if request.method not in UNSAFE_METHODS:
        return token, None
    check_origin(cookies)
    return token, check_csrf_token(settings, cookies).session_id


def request_access_token(settings: Settings) -> tuple[str | None, str | None]:
    """The request's access token: the ``Authorization`` header's, else the access cookie's.

    :returns: the token (``None`` if none was sent) and the session id that
        a cookie-authenticated unsafe request's CSRF token is bound to.
    :raises CsrfFailed: see :func:`access_cookie_token`.
    """
    token = access_token_from_request(settings)
    if token is not None or settings.cookies is None:
        return token, None
    found = access_cookie_token(settings)
    return found if found is not None else (None, None)

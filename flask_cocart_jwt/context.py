"""Request helpers: reading the access token and what it says.

The verified claims and the loaded user of the current request are kept under
``g._cocart_jwt``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flask import g, has_request_context, request
from werkzeug.local import LocalProxy

from .database import database_errors_as_503
from .exceptions import (
    FreshTokenRequired,
    MissingToken,
    SessionRevoked,
    UserNotFound,
)
from .limits import limit_token
from .state import AppState, current_extension
from .tokens import decode_access_token

if TYPE_CHECKING:
    from .extension import CoCartJWT

_G_KEY = "_cocart_jwt"


@dataclass(slots=True)
class RequestAuth:
    """The verified access token of a request, and its user."""

    claims: dict[str, Any]
    user: Any = None


@dataclass(slots=True)
class _Verified:
    """What ``verify_jwt_in_request`` found, tied to the request it checked.

    ``g`` belongs to the app context, which can outlive one request (a test
    that pushes ``app.app_context()`` around several requests); keeping the
    request object makes sure a later request never sees these claims.
    """

    request: Any
    auth: RequestAuth | None


def access_token_from_request(state: AppState) -> str | None:
    """The access token of the current request, or ``None`` if none was sent.

    A header with another scheme (e.g. ``Basic``) or a ``Bearer`` header with
    nothing after it counts as no token.
    """
    settings = state.settings
    value = request.environ.get(settings.header_environ_key)
    if not value:
        return None
    scheme, _, token = value.partition(" ")
    if scheme.lower() != settings.header_type.lower():
        return None
    token = token.strip()
    return token or None


def verify_access_token(token: str, state: AppState) -> dict[str, Any]:
    """Verify ``token`` and check that its session is not revoked."""
    claims = decode_access_token(token, state.settings, time.time())
    if state.revocations is not None and state.revocations.is_revoked(claims["sid"]):
        raise SessionRevoked
    return claims


def verify_jwt_in_request(optional: bool = False, fresh: bool = False) -> dict[str, Any] | None:
    """Verify the request's access token and make it available to the view.

    Called by :func:`~flask_cocart_jwt.jwt_required`; call it yourself where
    a decorator does not fit (e.g. in ``before_request``).

    :param optional: let a request without a token through (an invalid token
        is still refused); the helpers then return ``None``.
    :param fresh: require a token issued by a login, not by a refresh.
    :returns: the claims, or ``None`` when ``optional`` and no token was sent.
    :raises AuthError: the request is refused (renders as a JSON 401).
    """
    ext, state = current_extension()
    token = access_token_from_request(state)
    if token is None:
        if optional:
            _remember(None)
            return None
        raise MissingToken
    if state.limits is not None:  # the protected-view limit is opt-in
        limit_token("protected", token, state)
    claims = verify_access_token(token, state)
    if fresh and claims.get("fresh") is not True:
        raise FreshTokenRequired
    user = None if ext._user_loader is None else load_user(ext, claims)
    _remember(RequestAuth(claims, user))
    return claims


def load_user(ext: CoCartJWT, claims: dict[str, Any]) -> Any:
    """The user of verified ``claims`` from ``user_loader``; ``None`` without one.

    :raises UserNotFound: the user loader returned ``None``.
    """
    if ext._user_loader is None:
        return None
    with database_errors_as_503():
        user = ext._user_loader(claims["sub"])
    if user is None:
        raise UserNotFound
    return user


def _remember(auth: RequestAuth | None) -> None:
    setattr(g, _G_KEY, _Verified(request._get_current_object(), auth))  # type: ignore[attr-defined]


def _request_auth(helper: str) -> RequestAuth | None:
    """The verified token of the current request.

    :raises RuntimeError: outside a request, or before the token was verified.
    """
    if not has_request_context():
        raise RuntimeError(
            f"{helper} needs a request context: call it from a view protected by @jwt_required."
        )
    verified: _Verified | None = g.get(_G_KEY)
    if verified is None or verified.request is not request._get_current_object():  # type: ignore[attr-defined]
        raise RuntimeError(
            f"{helper} was called on a view that is not protected. "
            "Decorate it with @jwt_required or call verify_jwt_in_request() first."
        )
    return verified.auth


def get_jwt() -> dict[str, Any]:
    """The claims of the current request's access token.

    An empty dict when the view is ``optional`` and no token was sent.

    :raises RuntimeError: the view is not protected by ``jwt_required`` and
        ``verify_jwt_in_request`` was not called.
    """
    auth = _request_auth("get_jwt()")
    return dict(auth.claims) if auth is not None else {}


def get_jwt_identity() -> str | None:
    """The identity (``sub``) of the current request's token, or ``None``.

    ``None`` when the view is ``optional`` and no token was sent.

    :raises RuntimeError: the view is not protected by ``jwt_required`` and
        ``verify_jwt_in_request`` was not called.
    """
    auth = _request_auth("get_jwt_identity()")
    return auth.claims["sub"] if auth is not None else None


def get_current_user() -> Any:
    """The user loaded by ``user_loader`` for the current token, or ``None``.

    :raises RuntimeError: a token was verified but no ``user_loader`` is set,
        or the view is not protected.
    """
    auth = _request_auth("current_user")
    if auth is None:
        return None
    if auth.user is None:
        raise RuntimeError(
            "current_user needs a user loader. Register one with @cocart_jwt.user_loader."
        )
    return auth.user


#: A proxy to :func:`get_current_user` for the current request.
current_user: Any = LocalProxy(get_current_user)

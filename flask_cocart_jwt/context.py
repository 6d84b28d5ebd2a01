"""Request helpers: verifying the access token of a request, and what it says.

The verified claims and the loaded user of the current request are kept in
the request's record (see :mod:`flask_cocart_jwt.request_state`).
:func:`decode_token` is their twin for code that has a token but no request.
"""

from __future__ import annotations

from typing import Any

from flask import current_app, has_app_context
from werkzeug.local import LocalProxy

from .binding import bound_claims, check_unbound, dpop_access_token
from .config import Settings
from .csrf import access_cookie_token, check_bound
from .exceptions import FreshTokenRequired, InvalidToken, MissingToken
from .request_state import ATTRIBUTE, RequestState, current_request
from .service import Service, service_of
from .transport import access_token_from_environ


def verify_jwt_in_request(optional: bool = False, fresh: bool = False) -> dict[str, Any] | None:
    """Verify the request's access token and make it available to the view.

    Called by :func:`~flask_cocart_jwt.jwt_required`; call it yourself where
    a decorator does not fit (e.g. in ``before_request``).

    The token comes from the ``Authorization`` header; with
    ``COCART_JWT_ACCESS_COOKIE``, from the access cookie when no header is
    sent, and then ``POST``, ``PUT``, ``PATCH`` and ``DELETE`` requests must
    pass the CSRF checks (``403 csrf_failed``). With ``COCART_JWT_DPOP``, a
    token bound to a DPoP key must come as ``Authorization: DPoP <token>``
    with a valid ``DPoP`` proof by that key (``401 invalid_dpop_proof``).

    :param optional: let a request without a token through (an invalid token
        is still refused); the helpers then return ``None``.
    :param fresh: require a token issued by a login, not by a refresh.
    :returns: the claims, or ``None`` when ``optional`` and no token was sent.
    :raises AuthError: the request is refused (renders as a JSON 401).
    :raises RuntimeError: the extension is not initialised on the current app.
    """
    service = service_of(current_app._get_current_object())  # type: ignore[attr-defined]
    current = current_request()
    if service.dpop is not None:
        return _verify_with_dpop(service, current, optional, fresh)
    sent = _sent_token(current, service.settings, optional)
    if sent is None:
        _remember(current, None, None)
        return None
    token, csrf_session = sent
    claims = service.verify(token)
    if "cnf" in claims:  # bound to a DPoP key (before DPoP was switched off)
        check_unbound(claims, None)
    return _accept(service, current, claims, csrf_session, fresh)


def _verify_with_dpop(
    service: Service, current: Any, optional: bool, fresh: bool
) -> dict[str, Any] | None:
    """:func:`verify_jwt_in_request` with ``COCART_JWT_DPOP`` on: a bound token
    as ``Authorization: DPoP`` with its proof, or an unbound one as before.

    Apart from :func:`verify_jwt_in_request`'s own path, so that DPoP off
    costs the protected views nothing but one test.
    """
    csrf_session = None
    token = dpop_access_token(current.environ, service.settings)
    if token is not None:
        claims = bound_claims(service, token)
    else:
        sent = _sent_token(current, service.settings, optional)
        if sent is None:
            _remember(current, None, None)
            return None
        token, csrf_session = sent
        claims = service.verify(token)
        check_unbound(claims, service.dpop)  # a bound token needs its proof
    return _accept(service, current, claims, csrf_session, fresh)


def _sent_token(current: Any, settings: Settings, optional: bool) -> tuple[str, str | None] | None:
    """The request's access token and, from the access cookie, its CSRF session.

    The ``Authorization`` header first; cookie mode's access cookie only
    without one. ``None`` when ``optional`` and no token was sent.

    :raises MissingToken: no token was sent and it is not ``optional``.
    """
    token = access_token_from_environ(current.environ, settings)
    if token is not None:
        return token, None
    found = access_cookie_token(settings) if settings.cookies is not None else None
    if found is None and not optional:
        raise MissingToken
    return found


def _accept(
    service: Service, current: Any, claims: dict[str, Any], csrf_session: str | None, fresh: bool
) -> dict[str, Any]:
    """The checks after the token's own, with DPoP on or off: CSRF of the
    access cookie, the protected-view limit, freshness; then the user."""
    if csrf_session is not None:
        check_bound(csrf_session, claims["sid"])
    limits = service.limits
    if limits is not None:  # the protected-view limit is opt-in
        limits.limit_access_token("protected", claims)
    if fresh and claims.get("fresh") is not True:
        raise FreshTokenRequired
    _remember(current, claims, service.load_user(claims["sub"]))
    return claims


def decode_token(token: str) -> dict[str, Any]:
    """The verified claims of an access token, outside a request.

    The same strict verification as a protected view's: the signature with
    the app's keys, the algorithm allow-list, ``exp``, ``nbf``, ``iat``,
    ``iss``, ``aud``, the token type and the revocation of its session. It
    does not load the user and counts against no rate limit. Use it where a
    token arrives without a request: a WebSocket handshake, a task queue, a
    test.

    ::

        with app.app_context():
            claims = decode_token(token)

    :param token: the access token (the compact JWS, without ``Bearer``).
    :returns: the token's claims.
    :raises InvalidToken: anything but a valid access token of this app,
        a value that is not a string included. A token bound to a DPoP key
        is refused too: without a request there is no proof of the key.
    :raises TokenExpired: a valid token past its ``exp``.
    :raises SessionRevoked: its session was revoked.
    :raises ServiceUnavailable: the revocation check lost its database.
    :raises RuntimeError: outside an app context, or the extension is not
        initialised on the current app.

    .. versionadded:: 0.2
    """
    if not has_app_context():
        raise RuntimeError(
            "decode_token() needs an app context: "
            "call it in a view or inside 'with app.app_context():'."
        )
    service = service_of(current_app._get_current_object())  # type: ignore[attr-defined]
    if not isinstance(token, str):
        raise InvalidToken
    claims = service.verify(token)
    if "cnf" in claims:
        raise InvalidToken
    return claims


def _remember(current: object, claims: dict[str, Any] | None, user: Any) -> None:
    """Keep what was verified in the record of ``current``, the request."""
    state: RequestState | None = getattr(current, ATTRIBUTE, None)
    if state is None:
        # No record yet for this request (one exists when a rate limit of
        # the request was counted before the token was verified).
        state = RequestState()
        setattr(current, ATTRIBUTE, state)
    state.verified = True
    state.claims = claims
    state.user = user


def _verified(helper: str) -> RequestState:
    """The record of the current request, after its token was verified.

    :raises RuntimeError: outside a request, or before the token was verified.
    """
    try:
        current = current_request()
    except RuntimeError:
        raise RuntimeError(
            f"{helper} needs a request context: call it from a view protected by @jwt_required."
        ) from None
    state: RequestState | None = getattr(current, ATTRIBUTE, None)
    if state is None or not state.verified:
        raise RuntimeError(
            f"{helper} was called on a view that is not protected. "
            "Decorate it with @jwt_required or call verify_jwt_in_request() first."
        )
    return state


def get_jwt() -> dict[str, Any]:
    """The claims of the current request's access token.

    An empty dict when the view is ``optional`` and no token was sent.

    :raises RuntimeError: the view is not protected by ``jwt_required`` and
        ``verify_jwt_in_request`` was not called.
    """
    claims = _verified("get_jwt()").claims
    return dict(claims) if claims is not None else {}


def get_jwt_identity() -> str | None:
    """The identity (``sub``) of the current request's token, or ``None``.

    ``None`` when the view is ``optional`` and no token was sent.

    :raises RuntimeError: the view is not protected by ``jwt_required`` and
        ``verify_jwt_in_request`` was not called.
    """
    claims = _verified("get_jwt_identity()").claims
    return claims["sub"] if claims is not None else None


def get_current_user() -> Any:
    """The user loaded by ``user_loader`` for the current token, or ``None``.

    :raises RuntimeError: a token was verified but no ``user_loader`` is set,
        or the view is not protected.
    """
    state = _verified("current_user")
    if state.claims is None:
        return None
    if state.user is None:
        raise RuntimeError(
            "current_user needs a user loader. Register one with @cocart_jwt.user_loader."
        )
    return state.user


#: A proxy to :func:`get_current_user` for the current request.
current_user: Any = LocalProxy(get_current_user)

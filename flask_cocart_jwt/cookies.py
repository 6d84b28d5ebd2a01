"""Cookie transport (``COCART_JWT_COOKIE_MODE``): which requests use it, and its cookies.

A *browser request* is one that carries an ``Origin`` header, on an app in
cookie mode. Login and refresh answer it with the refresh token in an
``HttpOnly`` cookie whose ``Path`` is the URL prefix, a readable CSRF cookie
(``Path=/``) and, with ``COCART_JWT_ACCESS_COOKIE``, the access token in an
``HttpOnly`` cookie (``Path=/``); ``/refresh-token`` and ``/revoke`` read the
refresh token back from its cookie. Any other request (a mobile app, a
server, curl) keeps JSON transport, and its cookies are never read.

The CSRF checks that every cookie request must pass are in
:mod:`flask_cocart_jwt.csrf`.
"""

from __future__ import annotations

from flask import Response, request

from .config import Settings
from .cookie_settings import CookieSettings
from .results import TokenPair


def browser_cookies(settings: Settings) -> CookieSettings | None:
    """The cookie settings if the current request gets cookie transport, else ``None``.

    That is: the app is in cookie mode and the request carries ``Origin``.
    """
    cookies = settings.cookies
    if cookies is None or "HTTP_ORIGIN" not in request.environ:
        return None
    return cookies


def refresh_cookie(cookies: CookieSettings) -> str | None:
    """The refresh token of the request's refresh cookie, or ``None``."""
    return request.cookies.get(cookies.refresh_name) or None


def access_cookie(cookies: CookieSettings) -> str | None:
    """The access token of the request's access cookie, or ``None``."""
    if cookies.access_name is None:
        return None
    return request.cookies.get(cookies.access_name) or None


def csrf_cookie(cookies: CookieSettings) -> str | None:
    """The request's CSRF cookie, or ``None``."""
    return request.cookies.get(cookies.csrf_name) or None


def _set(
    response: Response,
    cookies: CookieSettings,
    name: str,
    value: str,
    *,
    max_age: int,
    path: str,
    httponly: bool,
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=path,
        domain=cookies.domain,
        secure=cookies.secure,
        httponly=httponly,
        samesite=cookies.samesite,
    )


def set_session_cookies(
    response: Response, cookies: CookieSettings, pair: TokenPair, csrf_token: str
) -> None:
    """Set the refresh cookie, the CSRF cookie and, if configured, the access cookie.

    The refresh and CSRF cookies live as long as the refresh token
    (``Max-Age`` = its remaining lifetime), so that they survive reloads and
    browser restarts; the access cookie as long as the access token.
    """
    lifetime = pair.refresh_token_expires_in
    _set(
        response,
        cookies,
        cookies.refresh_name,
        pair.refresh_token,
        max_age=lifetime,
        path=cookies.refresh_path,
        httponly=True,
    )
    _set(
        response, cookies, cookies.csrf_name, csrf_token, max_age=lifetime, path="/", httponly=False
    )
    # A DPoP-bound access token is only accepted with its proof, never from a cookie.
    if cookies.access_name is not None and pair.token_type != "DPoP":  # noqa: S105
        _set(
            response,
            cookies,
            cookies.access_name,
            pair.access_token,
            max_age=pair.expires_in,
            path="/",
            httponly=True,
        )


def clear_session_cookies(response: Response, cookies: CookieSettings) -> None:
    """Clear every cookie of cookie mode (``Max-Age=0``, same ``Path`` and ``Domain``)."""
    named = [(cookies.refresh_name, cookies.refresh_path, True), (cookies.csrf_name, "/", False)]
    if cookies.access_name is not None:
        named.append((cookies.access_name, "/", True))
    for name, path, httponly in named:
        response.delete_cookie(
            name,
            path=path,
            domain=cookies.domain,
            secure=cookies.secure,
            httponly=httponly,
            samesite=cookies.samesite,
        )

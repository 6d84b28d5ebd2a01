"""The token routes, registered as the ``cocart_jwt`` blueprint.

``init_app`` makes one blueprint per app, its views bound to that app's
:class:`~flask_cocart_jwt.service.Service`. The views are thin: they read the
request, call the service and shape the response. Every response carries
``Cache-Control: no-store`` (RFC 6749 5.1), and every error, Werkzeug's
included, is the contract's JSON through the app's ``error_response_loader``:
so is a request under the URL prefix that matches no route (404) or a method
no route there takes (405), which Werkzeug's routing refuses before any
blueprint is known, through an app-wide hook that leaves the rest of the app's
404 and 405 alone.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable

from flask import Blueprint, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from . import signals
from .binding import (
    bound_claims,
    check_unbound,
    dpop_access_token,
    revocation_key_check,
    token_endpoint_jkt,
)
from .cookie_settings import CookieSettings
from .cookies import browser_cookies, clear_session_cookies, refresh_cookie, set_session_cookies
from .csrf import check_bound, check_csrf_token, check_origin, new_csrf_token, request_access_token
from .exceptions import (
    AuthError,
    InvalidCredentials,
    InvalidRefreshToken,
    InvalidRequest,
    MethodNotAllowed,
    MissingToken,
    NotFound,
    RateLimited,
    RefreshTokenExpired,
    RefreshTokenReused,
    UserNotFound,
)
from .openapi import OPENAPI_PATH, openapi_document
from .refresh_tokens import MAX_REFRESH_TOKEN_CHARS
from .results import TokenPair
from .routing import fallback_rules, methods_of_other_rules
from .service import Service
from .transport import (
    access_token_from_request,
    json_body,
    login_credentials,
    request_client,
    revocation_request,
)

BLUEPRINT_NAME = "cocart_jwt"
#: The endpoints whose responses may be cached (no token in them).
_CACHEABLE = frozenset({f"{BLUEPRINT_NAME}.jwks", f"{BLUEPRINT_NAME}.openapi"})
#: The shape of a session id (``secrets.token_urlsafe(16)``); anything else is
#: not looked up (a NUL byte is a database error on PostgreSQL).
_SESSION_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
#: Refresh failures that end the session: cookie mode clears its cookies.
_SESSION_ENDED = (InvalidRefreshToken, RefreshTokenExpired, RefreshTokenReused, UserNotFound)


class TokenRoutes:
    """The views of the token routes of one app.

    :param service: the app's service.
    """

    def __init__(self, service: Service) -> None:
        self.service = service
        #: The ``Allow`` of each token route, by the endpoint of its catch-all.

    # -- helpers -------------------------------------------------------------

    def _limit_ip(self, route: str) -> None:
        limits = self.service.limits
        if limits is not None:
            limits.limit_ip(route, request.remote_addr)

    def _bearer_claims(self, limit: str | None = None) -> dict[str, object]:
        """The verified claims of the request's Bearer token, whose user must exist.

        With ``COCART_JWT_ACCESS_COOKIE``, the access cookie stands in for a
        missing header, through the CSRF checks. With ``COCART_JWT_DPOP``, a
        bound token comes as ``Authorization: DPoP`` with its proof.

        :param limit: the route whose per-token limit to hit (``"validate"``),
            counted by the verified token's ``jti``, before the user is loaded.
        """
        service = self.service
        bound = None
        if service.dpop is not None:
            bound = dpop_access_token(request.environ, service.settings)
        csrf_session: str | None = None
        if bound is not None:
            claims = bound_claims(service, bound)
        else:
            token, csrf_session = request_access_token(service.settings)
            if token is None:
                raise MissingToken
            claims = service.verify(token)
            check_unbound(claims, service.dpop)
        if csrf_session is not None:
            check_bound(csrf_session, str(claims["sid"]))
        limits = service.limits
        if limit is not None and limits is not None:
            limits.limit_access_token(limit, claims)
        service.load_user(claims["sub"])
        return claims

    def _cookie_token_response(
        self,
        pair: TokenPair,
        cookies: CookieSettings,
        csrf: str,
        extra: dict[str, object] | None = None,
    ) -> Response:
        """The token response of cookie transport: without ``refresh_token``
        (it is in the cookie), with the cookies set; ``extra`` members never
        replace a token field."""
        fields = pair.to_dict()
        body = {key: value for key, value in fields.items() if key != "refresh_token"}
        if extra:
            body.update((key, value) for key, value in extra.items() if key not in fields)
        response = jsonify(body)
        set_session_cookies(response, cookies, pair, csrf)
        return response

    def _refresh_cookie_token(self, cookies: CookieSettings, *, revoke: bool) -> str | None:
        """The refresh cookie of a cookie-transport request, which must not
        also send a token in its body (JSON, or a form on ``/revoke``)."""
        if revoke:
            named = revocation_request() is not None
        else:
            body = json_body(required=False)
            named = "refresh_token" in body or "token" in body
        if named:
            raise InvalidRequest(
                "In cookie mode a browser sends the refresh token as a cookie, not in the body."
            )
        return refresh_cookie(cookies)

    # -- views ---------------------------------------------------------------

    def login(self) -> Response:
        """``POST /login``: check credentials and answer with a token pair.

        In cookie mode a browser's login passes the origin check first.
        """
        service = self.service
        limits = service.limits
        cookies = browser_cookies(service.settings)
        if cookies is not None:
            check_origin(cookies)  # login CSRF
        self._limit_ip("login")
        username, password = login_credentials()
        if limits is not None:
            limits.check_login_username(username, request.remote_addr)
        jkt = token_endpoint_jkt(service)  # a DPoP proof binds the new session
        user = service.check_credentials(username, password)
        if user is None:
            if limits is not None:
                limits.record_login_failure(username, request.remote_addr)
            raise InvalidCredentials
        pair = service.issue(user, fresh=True, client=request_client(), jkt=jkt)
        loader = service.callbacks.login_response_loader_callback
        extra = loader(user) if loader is not None else None
        if cookies is None:
            return pair.to_response(extra=extra)
        csrf = new_csrf_token(service.settings, pair.session_id)
        return self._cookie_token_response(pair, cookies, csrf, extra)

    def refresh_token(self) -> Response:
        """``POST /refresh-token``: rotate a refresh token into a new pair."""
        cookies = browser_cookies(self.service.settings)
        if cookies is not None:
            return self._refresh_from_cookie(cookies)
        self._limit_ip("refresh")
        body = json_body()
        token = body.get("refresh_token")
        if not isinstance(token, str) or not token:
            raise InvalidRequest("The field 'refresh_token' is required and must be a string.")
        if len(token) > MAX_REFRESH_TOKEN_CHARS:
            raise InvalidRequest("The field 'refresh_token' is too long.")
        jkt = token_endpoint_jkt(self.service)  # a bound session needs its key's proof
        limits = self.service.limits
        if limits is not None:
            try:
                limits.limit_token("refresh", token)
            except RateLimited:
                # A replay is detected (and its session revoked) even when its
                # per-token limit answers 429 first.
                self.service.revoke_if_replayed(token, request_client(), jkt=jkt)
                raise
        return jsonify(self.service.refresh(token, request_client(), jkt=jkt).to_dict())

    def _refresh_from_cookie(self, cookies: CookieSettings) -> Response:
        """``POST /refresh-token`` with cookie transport: the CSRF checks, then the
        rotation of the refresh cookie; a refresh that ends the session clears
        the cookies, a refused one (CSRF, rate limit) leaves them alone."""
        service = self.service
        check_origin(cookies)
        token = self._refresh_cookie_token(cookies, revoke=False)
        try:
            if token is None or len(token) > MAX_REFRESH_TOKEN_CHARS:
                raise InvalidRefreshToken
            csrf = check_csrf_token(service.settings, cookies)
            self._limit_ip("refresh")
            jkt = token_endpoint_jkt(service)

            def bound(session_id: str) -> None:
                check_bound(csrf.session_id, session_id)

            limits = service.limits
            if limits is not None:
                try:
                    limits.limit_token("refresh", token)
                except RateLimited as limited:
                    # A replay is detected (its session revoked) even when its
                    # per-token limit answers 429 first, as with JSON transport.
                    replayed = service.revoke_if_replayed(
                        token, request_client(), check_session=bound, jkt=jkt
                    )
                    if replayed:
                        return self._ended(limited, cookies)
                    raise
            pair = service.refresh(token, request_client(), check_session=bound, jkt=jkt)
        except _SESSION_ENDED as error:
            return self._ended(error, cookies)
        # The CSRF token is the session's: the same value is set again, so a
        # request of another tab that read it before this refresh still passes.
        return self._cookie_token_response(pair, cookies, csrf.value)

    def _ended(self, error: AuthError, cookies: CookieSettings) -> Response:
        """The error of a request that ended its session, with the cookies cleared."""
        response = self.service.render_error(error)
        clear_session_cookies(response, cookies)
        return response

    def validate_token(self) -> Response:
        """``POST /validate-token``: say whether the Bearer access token is valid."""
        self._limit_ip("validate")
        claims = self._bearer_claims(limit="validate")
        signals.token_validated.send(
            current_app._get_current_object(),  # type: ignore[attr-defined]
            identity=claims["sub"],
            session_id=claims["sid"],
        )
        return jsonify(
            valid=True,
            identity=claims["sub"],
            session_id=claims["sid"],
            expires_at=int(claims["exp"]),  # type: ignore[call-overload]
        )

    def revoke(self) -> Response:
        """``POST /revoke``: log out the session of a refresh or access token.

        RFC 7009's ``token`` (any kind) or the ``refresh_token`` field, as
        JSON or a form; without either, the Bearer access token. A token in
        the body that is unknown, invalid or expired still answers 200
        (RFC 7009 section 2.2).
        """
        cookies = browser_cookies(self.service.settings)
        if cookies is not None:
            return self._revoke_cookie(cookies)
        self._limit_ip("revoke")
        named = revocation_request()
        check_key = revocation_key_check(self.service) if named is not None else None
        if named is not None and named.field == "token":
            self.service.revoke_token(named.token, check_key=check_key)
        elif named is not None:
            self.service.revoke_refresh_token(named.token, check_key=check_key)
        else:
            claims = self._bearer_claims()
            self.service.revoke_session(str(claims["sid"]), "logout")
        return jsonify(revoked=True)

    def _revoke_cookie(self, cookies: CookieSettings) -> Response:
        """``POST /revoke`` with cookie transport: log out the refresh cookie's
        session (after the CSRF checks), else the Bearer token's, and clear
        the cookies either way."""
        service = self.service
        check_origin(cookies)
        token = self._refresh_cookie_token(cookies, revoke=True)
        if token is not None:
            csrf = check_csrf_token(service.settings, cookies)
            self._limit_ip("revoke")
            service.revoke_refresh_token(
                token,
                check_session=lambda sid: check_bound(csrf.session_id, sid),
                check_key=revocation_key_check(service),
            )
        else:
            self._limit_ip("revoke")
            if access_token_from_request(service.settings) is not None:
                service.revoke_session(str(self._bearer_claims()["sid"]), "logout")
        response = jsonify(revoked=True)
        clear_session_cookies(response, cookies)
        return response

    def revoke_all(self) -> Response:
        """``POST /revoke-all``: revoke every session of the token's user.

        In cookie mode a browser's cookies are cleared too.
        """
        claims = self._bearer_claims()
        response = jsonify(
            revoked=self.service.revoke_user(str(claims["sub"]), "logout_everywhere")
        )
        cookies = browser_cookies(self.service.settings)
        if cookies is not None:
            clear_session_cookies(response, cookies)
        return response

    def sessions(self) -> Response:
        """``GET /sessions``: the live sessions of the token's user."""
        claims = self._bearer_claims()
        current = claims["sid"]
        listed = [
            {**info.to_dict(), "current": info.id == current}
            for info in self.service.list_sessions(str(claims["sub"]))
        ]
        return jsonify(sessions=listed)

    def delete_session(self, session_id: str) -> Response:
        """``DELETE /sessions/<id>``: revoke one of the token's user's own sessions."""
        claims = self._bearer_claims()
        if not _SESSION_ID.fullmatch(session_id) or not self.service.revoke_session(
            session_id, "logout", identity=str(claims["sub"])
        ):
            raise NotFound("No such session.")
        return jsonify(revoked=True)

    def jwks(self) -> Response:
        """``GET /jwks.json``: the public keys (RFC 7517); empty for HS* secrets."""
        response = jsonify(self.service.settings.keyring.jwks())
        response.headers["Cache-Control"] = "public, max-age=300"
        return response

    def openapi(self) -> Response:
        """``GET /openapi.json``: the OpenAPI document of these routes.

        Its server URL is where the routes answer (the script root and
        ``COCART_JWT_URL_PREFIX``), relative to the document, so that no
        ``Host`` header finds its way into a cached copy.
        """
        document = openapi_document(
            url_prefix=request.script_root + self.service.settings.url_prefix
        )
        # In the document's own order (openapi, info, ..., paths, components),
        # whatever the app's JSON provider would sort.
        response: Response = current_app.response_class(
            json.dumps(document, separators=(",", ":")) + "\n", mimetype="application/json"
        )
        response.headers["Cache-Control"] = "public, max-age=300"
        response.add_etag()
        response.make_conditional(request)
        return response

    # -- the blueprint's own hooks ------------------------------------------

    def no_store(self, response: Response) -> Response:
        """``Cache-Control: no-store`` on every response but the JWKS and the OpenAPI document."""
        if request.endpoint not in _CACHEABLE:
            response.headers["Cache-Control"] = "no-store"
            response.headers["Pragma"] = "no-cache"
        return response

    def http_error(self, error: HTTPException) -> Response | HTTPException:
        """Werkzeug's 4xx errors on the token routes, as the contract's JSON."""
        if error.code is None or error.code >= 500:
            return error
        if error.code == 429:  # e.g. the app's own Flask-Limiter
            retry_after = getattr(error, "retry_after", None)
            limited = RateLimited(retry_after=retry_after if isinstance(retry_after, int) else 60)
            return self.service.render_error(limited)
        return self.service.render_error(InvalidRequest())


def _allow(allowed: str) -> str:
    """The ``Allow`` of a token route that takes the method ``allowed``."""
    return f"{allowed}, OPTIONS" + (", HEAD" if allowed == "GET" else "")


@functools.cache
def _other_methods(allowed: str) -> Callable[..., Response]:
    """The view of every method a token route does not take.

    ``OPTIONS`` answers as Flask's automatic one would, but with the route's
    own methods in ``Allow`` (Flask's would list this view's too); anything
    else is the contract's JSON 405.
    """
    allow = _allow(allowed)

    def other_methods(**_kwargs: object) -> Response:
        if request.method != "OPTIONS":
            raise MethodNotAllowed(f"This route only accepts {allowed}.", allow=allow)
        response: Response = current_app.response_class()
        response.headers["Allow"] = allow
        return response

    return other_methods


def _not_found(**_kwargs: object) -> Response:
    """The view of unknown paths (and of the app's own routes' unknown methods) under the prefix."""
    allowed = methods_of_other_rules()
    if allowed:
        raise MethodNotAllowed(allow=", ".join(allowed))
    raise NotFound


def create_blueprint(service: Service) -> Blueprint:
    """The blueprint of the token routes of the app of ``service``."""
    routes = TokenRoutes(service)
    bp = Blueprint(BLUEPRINT_NAME, __name__)
    table: tuple[tuple[str, Callable[..., Response], str], ...] = (
        ("/login", routes.login, "POST"),
        ("/refresh-token", routes.refresh_token, "POST"),
        ("/validate-token", routes.validate_token, "POST"),
        ("/revoke", routes.revoke, "POST"),
        ("/revoke-all", routes.revoke_all, "POST"),
        ("/sessions", routes.sessions, "GET"),
        ("/sessions/<session_id>", routes.delete_session, "DELETE"),
        # Ids with a slash must reach the view too, for a JSON 404.
        ("/sessions/<path:session_id>", routes.delete_session, "DELETE"),
        ("/jwks.json", routes.jwks, "GET"),
    )
    if service.settings.openapi_route:
        table += ((OPENAPI_PATH, routes.openapi, "GET"),)
    others = []
    for path, view, method in table:
        bp.add_url_rule(path, view_func=view, methods=[method], provide_automatic_options=False)
        # Every other method, TRACE and FOO included, gets the contract's
        # JSON 405, not Werkzeug's HTML one.
        others.append((path, f"{view.__name__}_other_methods", _other_methods(method)))
    bp.record(fallback_rules(BLUEPRINT_NAME, others, _not_found))
    bp.after_request(routes.no_store)
    bp.register_error_handler(HTTPException, routes.http_error)
    return bp

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
from typing import NoReturn, cast

from flask import Blueprint, Flask, Request, Response, current_app, jsonify, request
from werkzeug import exceptions as http
from werkzeug.exceptions import HTTPException

from . import signals
from .exceptions import (
    InvalidCredentials,
    InvalidRequest,
    MethodNotAllowed,
    MissingToken,
    NotFound,
    RateLimited,
)
from .openapi import OPENAPI_PATH, openapi_document
from .refresh_tokens import MAX_REFRESH_TOKEN_CHARS
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
_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})


class TokenRoutes:
    """The views of the token routes of one app.

    :param service: the app's service.
    """

    def __init__(self, service: Service) -> None:
        self.service = service
        #: The ``Allow`` of each token route, by the endpoint of its catch-all.
        self.allow: dict[str, str] = {}

    # -- helpers -------------------------------------------------------------

    def _limit_ip(self, route: str) -> None:
        limits = self.service.limits
        if limits is not None:
            limits.limit_ip(route, request.remote_addr)

    def _bearer_claims(self, limit: str | None = None) -> dict[str, object]:
        """The verified claims of the request's Bearer token, whose user must exist.

        :param limit: the route whose per-token limit to hit (``"validate"``),
            counted by the verified token's ``jti``, before the user is loaded.
        """
        service = self.service
        token = access_token_from_request(service.settings)
        if token is None:
            raise MissingToken
        claims = service.verify(token)
        limits = service.limits
        if limit is not None and limits is not None:
            limits.limit_access_token(limit, claims)
        service.load_user(claims["sub"])
        return claims

    # -- views ---------------------------------------------------------------

    def login(self) -> Response:
        """``POST /login``: check credentials and answer with a token pair."""
        service = self.service
        limits = service.limits
        self._limit_ip("login")
        username, password = login_credentials()
        if limits is not None:
            limits.check_login_username(username, request.remote_addr)
        user = service.check_credentials(username, password)
        if user is None:
            if limits is not None:
                limits.record_login_failure(username, request.remote_addr)
            raise InvalidCredentials
        pair = service.issue(user, fresh=True, client=request_client())
        loader = service.callbacks.login_response_loader_callback
        return pair.to_response(extra=loader(user) if loader is not None else None)

    def refresh_token(self) -> Response:
        """``POST /refresh-token``: rotate a refresh token into a new pair."""
        self._limit_ip("refresh")
        body = json_body()
        token = body.get("refresh_token")
        if not isinstance(token, str) or not token:
            raise InvalidRequest("The field 'refresh_token' is required and must be a string.")
        if len(token) > MAX_REFRESH_TOKEN_CHARS:
            raise InvalidRequest("The field 'refresh_token' is too long.")
        limits = self.service.limits
        if limits is not None:
            try:
                limits.limit_token("refresh", token)
            except RateLimited:
                # A replay is detected (and its session revoked) even when its
                # per-token limit answers 429 first.
                self.service.revoke_if_replayed(token, request_client())
                raise
        return jsonify(self.service.refresh(token, request_client()).to_dict())

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
        self._limit_ip("revoke")
        named = revocation_request()
        if named is not None and named.field == "token":
            self.service.revoke_token(named.token)
        elif named is not None:
            self.service.revoke_refresh_token(named.token)
        else:
            claims = self._bearer_claims()
            self.service.revoke_session(str(claims["sid"]), "logout")
        return jsonify(revoked=True)

    def revoke_all(self) -> Response:
        """``POST /revoke-all``: revoke every session of the token's user."""
        claims = self._bearer_claims()
        return jsonify(revoked=self.service.revoke_user(str(claims["sub"]), "logout_everywhere"))

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

    def unrouted(self) -> None:
        """For a request of the app that matched no route: under the prefix, JSON.

        A path under ``COCART_JWT_URL_PREFIX`` that matches no route is
        ``not_found``; a method that no route of the path takes (``TRACE``,
        ``FOO``...) is ``method_not_allowed`` with that route's own ``Allow``.
        The prefix is compared without regard to case, so that ``/AUTH/login``
        is a JSON 404 too (routing itself stays case-sensitive, as in Flask).
        Other paths keep the app's own 404 and 405. With an empty prefix only
        the token routes' 405s are answered here.
        """
        error = request.routing_exception
        if isinstance(error, http.MethodNotAllowed):
            allow = self._route_allow()
            if allow is not None or self._under_prefix(request.path):
                raise MethodNotAllowed(
                    allow=allow if allow is not None else ", ".join(error.valid_methods or ())
                )
        elif isinstance(error, http.NotFound) and self._under_prefix(request.path):
            raise NotFound

    def _under_prefix(self, path: str) -> bool:
        prefix = self.service.settings.url_prefix.lower()
        path = path.lower()
        return bool(prefix) and (path == prefix or path.startswith(prefix + "/"))

    def _route_allow(self) -> str | None:
        """The ``Allow`` of the token route at the request's path, if there is one."""
        adapter = current_app.create_url_adapter(request)
        if adapter is None:
            return None
        try:
            rule, _args = adapter.match(method="OPTIONS", return_rule=True)
        except HTTPException:
            return None
        return self.allow.get(rule.endpoint)


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
    for path, view, method in table:
        bp.add_url_rule(path, view_func=view, methods=[method], provide_automatic_options=False)
        # Other methods get the contract's JSON error, not Werkzeug's HTML 405.
        other = f"{view.__name__}_other_methods"
        bp.add_url_rule(
            path,
            endpoint=other,
            view_func=_other_methods(method),
            methods=sorted(_METHODS - {method} | {"OPTIONS"}),
            provide_automatic_options=False,
        )
        routes.allow[f"{BLUEPRINT_NAME}.{other}"] = _allow(method)
    bp.after_request(routes.no_store)
    bp.register_error_handler(HTTPException, routes.http_error)
    # Methods outside the catch-alls' (TRACE, FOO...) and unknown paths fail
    # in routing, before the blueprint is known. Flask hands those requests,
    # and only those, to app.raise_routing_exception: the app's other
    # requests pay nothing.
    bp.record_once(lambda state: _intercept_routing_errors(cast(Flask, state.app), routes.unrouted))
    return bp


def _intercept_routing_errors(app: Flask, unrouted: Callable[[], None]) -> None:
    """Run ``unrouted`` for the requests of ``app`` that match no route.

    Wraps ``app.raise_routing_exception`` (Flask's hook for "this request
    could not be routed", which a subclass would override), keeping whatever
    was there for every other case.
    """
    original = app.raise_routing_exception

    def raise_routing_exception(request: Request) -> NoReturn:
        unrouted()
        original(request)

    app.raise_routing_exception = raise_routing_exception  # type: ignore[method-assign]

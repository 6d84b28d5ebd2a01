"""The token routes, registered as the ``cocart_jwt`` blueprint.

The views are thin: they read the request, call the extension and shape the
response. Every response carries ``Cache-Control: no-store`` (RFC 6749 5.1).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable

from flask import Blueprint, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from . import limits, signals
from .context import access_token_from_request, load_user, verify_access_token
from .database import database_errors_as_503
from .exceptions import AuthError, InvalidCredentials, InvalidRequest, MissingToken, RateLimited
from .parsing import json_body, login_credentials
from .refresh_tokens import MAX_REFRESH_TOKEN_CHARS
from .state import current_extension

BLUEPRINT_NAME = "cocart_jwt"
#: The shape of a session id (``secrets.token_urlsafe(16)``); anything else is
#: not looked up (a NUL byte is a database error on PostgreSQL).
_SESSION_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _bearer_claims() -> dict[str, object]:
    """The verified claims of the request's Bearer token, whose user must exist."""
    ext, state = current_extension()
    token = access_token_from_request(state)
    if token is None:
        raise MissingToken
    claims = verify_access_token(token, state)
    load_user(ext, claims)
    return claims


def login() -> Response:
    """``POST /login``: check credentials and answer with a token pair."""
    ext, _ = current_extension()
    limits.limit_ip("login")
    username, password = login_credentials()
    limits.check_login_username(username)
    checker = ext._credentials_checker
    if checker is None:
        raise RuntimeError(
            "POST /login needs a credentials checker. Register one with "
            "@cocart_jwt.credentials_checker."
        )
    with database_errors_as_503():
        user = checker(username, password)
    if user is None:
        limits.record_login_failure(username)
        raise InvalidCredentials
    pair = ext.issue_tokens(user, fresh=True)
    extra = ext._login_response_loader(user) if ext._login_response_loader else {}
    return jsonify({**extra, **pair.to_dict()})


def refresh_token() -> Response:
    """``POST /refresh-token``: rotate a refresh token into a new pair."""
    ext, _ = current_extension()
    limits.limit_ip("refresh")
    body = json_body()
    token = body.get("refresh_token")
    if not isinstance(token, str) or not token:
        raise InvalidRequest("The field 'refresh_token' is required and must be a string.")
    if len(token) > MAX_REFRESH_TOKEN_CHARS:
        raise InvalidRequest("The field 'refresh_token' is too long.")
    limits.limit_token("refresh", token)
    return jsonify(ext.refresh(token).to_dict())


def validate_token() -> Response:
    """``POST /validate-token``: say whether the Bearer access token is valid."""
    limits.limit_bearer("validate")
    claims = _bearer_claims()
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


def revoke() -> Response:
    """``POST /revoke``: log out the session of a refresh or access token.

    An unknown refresh token still answers 200 (RFC 7009).
    """
    ext, _ = current_extension()
    limits.limit_ip("revoke")
    body = json_body(required=False)
    if "refresh_token" in body:
        token = body["refresh_token"]
        if not isinstance(token, str) or not token or len(token) > MAX_REFRESH_TOKEN_CHARS:
            raise InvalidRequest("The field 'refresh_token' must be a string.")
        ext.revoke_refresh_token(token)
    else:
        claims = _bearer_claims()
        ext.revoke_session(str(claims["sid"]), "logout")
    return jsonify(revoked=True)


def revoke_all() -> Response:
    """``POST /revoke-all``: revoke every session of the token's user."""
    ext, _ = current_extension()
    claims = _bearer_claims()
    return jsonify(revoked=ext.revoke_user(str(claims["sub"]), "logout_everywhere"))


def sessions() -> Response:
    """``GET /sessions``: the live sessions of the token's user."""
    ext, _ = current_extension()
    claims = _bearer_claims()
    current = claims["sid"]
    listed = [
        {**info.to_dict(), "current": info.id == current}
        for info in ext.list_sessions(str(claims["sub"]))
    ]
    return jsonify(sessions=listed)


def delete_session(session_id: str) -> Response:
    """``DELETE /sessions/<id>``: revoke one of the token's user's own sessions."""
    ext, _ = current_extension()
    claims = _bearer_claims()
    if not _SESSION_ID.fullmatch(session_id) or not ext.revoke_session(
        session_id, "logout", identity=str(claims["sub"])
    ):
        response = jsonify(error="not_found", message="No such session.")
        response.status_code = 404
        return response
    return jsonify(revoked=True)


def jwks() -> Response:
    """``GET /jwks.json``: the public keys (RFC 7517); empty for HS* secrets."""
    _, state = current_extension()
    response = jsonify(state.settings.keyring.jwks())
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


def _no_store(response: Response) -> Response:
    if request.endpoint != f"{BLUEPRINT_NAME}.jwks":
        response.headers["Cache-Control"] = "no-store"
        response.headers["Pragma"] = "no-cache"
    return response


def _http_error(error: HTTPException) -> Response | HTTPException:
    """Werkzeug's 4xx errors on the token routes, as the contract's JSON."""
    if error.code is None or error.code >= 500:
        return error
    if error.code == 429:  # e.g. the app's own Flask-Limiter
        retry_after = getattr(error, "retry_after", None)
        return _render(RateLimited(retry_after=retry_after if isinstance(retry_after, int) else 60))
    return _render(InvalidRequest())


_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})


@functools.cache
def _other_methods(allowed: str) -> Callable[..., Response]:
    """The view of every method a token route does not take.

    ``OPTIONS`` answers as Flask's automatic one would, but with the route's
    own methods in ``Allow`` (Flask's would list this view's too); anything
    else is the contract's JSON 405.
    """
    allow = f"{allowed}, OPTIONS" + (", HEAD" if allowed == "GET" else "")

    def other_methods(**_kwargs: object) -> Response:
        if request.method == "OPTIONS":
            response: Response = current_app.response_class()
        else:
            response = jsonify(
                error="method_not_allowed", message=f"This route only accepts {allowed}."
            )
            response.status_code = 405
        response.headers["Allow"] = allow
        return response

    return other_methods


def _render(error: AuthError) -> Response:
    ext, _ = current_extension()
    return ext._handle_auth_error(error)


def create_blueprint() -> Blueprint:
    """The blueprint of the token routes."""
    bp = Blueprint(BLUEPRINT_NAME, __name__)
    routes = (
        ("/login", login, "POST"),
        ("/refresh-token", refresh_token, "POST"),
        ("/validate-token", validate_token, "POST"),
        ("/revoke", revoke, "POST"),
        ("/revoke-all", revoke_all, "POST"),
        ("/sessions", sessions, "GET"),
        ("/sessions/<session_id>", delete_session, "DELETE"),
        # Ids with a slash must reach the view too, for a JSON 404.
        ("/sessions/<path:session_id>", delete_session, "DELETE"),
        ("/jwks.json", jwks, "GET"),
    )
    for path, view, method in routes:
        bp.add_url_rule(path, view_func=view, methods=[method], provide_automatic_options=False)
        # Other methods get the contract's JSON error, not Werkzeug's HTML 405.
        bp.add_url_rule(
            path,
            endpoint=f"{view.__name__}_other_methods",
            view_func=_other_methods(method),
            methods=sorted(_METHODS - {method} | {"OPTIONS"}),
            provide_automatic_options=False,
        )
    bp.after_request(_no_store)
    bp.register_error_handler(HTTPException, _http_error)
    return bp

"""The token routes, registered as the ``cocart_jwt`` blueprint.

The views are thin: they read the request, call the extension and shape the
response. Every response carries ``Cache-Control: no-store`` (RFC 6749 5.1).
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from . import signals
from .context import access_token_from_request, verify_access_token
from .exceptions import AuthError, InvalidCredentials, InvalidRequest, MissingToken
from .parsing import json_body, login_credentials
from .state import current_extension
from .store import MAX_REFRESH_TOKEN_CHARS

BLUEPRINT_NAME = "cocart_jwt"


def _bearer_claims() -> dict[str, object]:
    _, state = current_extension()
    token = access_token_from_request(state)
    if token is None:
        raise MissingToken
    return verify_access_token(token, state)


def login() -> Response:
    """``POST /login``: check credentials and answer with a token pair."""
    ext, _ = current_extension()
    username, password = login_credentials()
    checker = ext._credentials_checker
    if checker is None:
        raise RuntimeError(
            "POST /login needs a credentials checker. Register one with "
            "@cocart_jwt.credentials_checker."
        )
    user = checker(username, password)
    if user is None:
        raise InvalidCredentials
    pair = ext.issue_tokens(user, fresh=True)
    extra = ext._login_response_loader(user) if ext._login_response_loader else {}
    return jsonify({**extra, **pair.to_dict()})


def refresh_token() -> Response:
    """``POST /refresh-token``: rotate a refresh token into a new pair."""
    ext, _ = current_extension()
    body = json_body()
    token = body.get("refresh_token")
    if not isinstance(token, str) or not token:
        raise InvalidRequest("The field 'refresh_token' is required and must be a string.")
    if len(token) > MAX_REFRESH_TOKEN_CHARS:
        raise InvalidRequest("The field 'refresh_token' is too long.")
    return jsonify(ext.refresh(token).to_dict())


def validate_token() -> Response:
    """``POST /validate-token``: say whether the Bearer access token is valid."""
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
    if len(session_id) > 64 or not ext.revoke_session(
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
    return _render(InvalidRequest())


def _render(error: AuthError) -> Response:
    ext, _ = current_extension()
    return ext._handle_auth_error(error)


def create_blueprint() -> Blueprint:
    """The blueprint of the token routes."""
    bp = Blueprint(BLUEPRINT_NAME, __name__)
    bp.add_url_rule("/login", view_func=login, methods=["POST"])
    bp.add_url_rule("/refresh-token", view_func=refresh_token, methods=["POST"])
    bp.add_url_rule("/validate-token", view_func=validate_token, methods=["POST"])
    bp.add_url_rule("/revoke", view_func=revoke, methods=["POST"])
    bp.add_url_rule("/revoke-all", view_func=revoke_all, methods=["POST"])
    bp.add_url_rule("/sessions", view_func=sessions, methods=["GET"])
    bp.add_url_rule("/sessions/<session_id>", view_func=delete_session, methods=["DELETE"])
    bp.add_url_rule("/jwks.json", view_func=jwks, methods=["GET"])
    bp.after_request(_no_store)
    bp.register_error_handler(HTTPException, _http_error)
    return bp

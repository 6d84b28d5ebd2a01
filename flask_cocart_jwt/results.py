"""The public value types returned by the extension's API."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from flask import Response, jsonify


@dataclass(frozen=True, slots=True)
class TokenPair:
    """A new access token and refresh token, as sent in the token response.

    .. warning:: Both tokens are credentials: never log them.
    """

    access_token: str
    expires_in: int
    refresh_token: str
    refresh_token_expires_in: int
    session_id: str
    token_type: str = "Bearer"  # noqa: S105

    def __repr__(self) -> str:
        return f"TokenPair(session_id={self.session_id!r}, expires_in={self.expires_in})"

    def to_dict(self) -> dict[str, Any]:
        """The token response body of the contract.

        The keys are in alphabetical order, the order in which Flask's
        default JSON provider (``app.json.sort_keys``) sends them, so that a
        response lists them the same way whatever that setting is.
        """
        return {
            "access_token": self.access_token,
            "expires_in": self.expires_in,
            "refresh_token": self.refresh_token,
            "refresh_token_expires_in": self.refresh_token_expires_in,
            "session_id": self.session_id,
            "token_type": self.token_type,
        }

    def to_response(self, status: int = 200, *, extra: Mapping[str, Any] | None = None) -> Response:
        """The token response, to return from a view: what ``POST /login`` sends.

        The JSON of :meth:`to_dict` through the app's JSON provider (as
        :func:`flask.jsonify`), with ``Cache-Control: no-store`` and
        ``Pragma: no-cache`` (RFC 6749 section 5.1): a response that carries
        tokens must never be stored by a browser or a proxy. Use it wherever
        your own routes hand out tokens, e.g. after a sign-up::

            @app.post("/signup")
            def signup():
                user = create_user(request.get_json())
                return cocart_jwt.issue_tokens(user).to_response(201)

        Needs an app context.

        :param status: the HTTP status, e.g. ``201`` for a new account.
        :param extra: more members for the body, after the token fields, as
            :meth:`~flask_cocart_jwt.CoCartJWT.login_response_loader` adds
            them to the login response; they never replace a token field.

        .. versionadded:: 0.2
        """
        body = self.to_dict()
        if extra:
            body.update((key, value) for key, value in extra.items() if key not in body)
        response = jsonify(body)
        response.status_code = status
        response.headers["Cache-Control"] = "no-store"
        response.headers["Pragma"] = "no-cache"
        return response


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """One live session (refresh-token family) of a user.

    Times are Unix seconds. ``current`` is true for the session of the access
    token that made the request; ``dpop_bound`` for a session bound to a DPoP
    key (RFC 9449), whose tokens are worthless without it.
    """

    id: str
    created_at: int
    last_used_at: int
    expires_at: int
    ip: str | None
    user_agent: str | None
    current: bool = False
    #: .. versionadded:: 0.2
    dpop_bound: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The JSON form used by ``GET /sessions``."""
        return asdict(self)

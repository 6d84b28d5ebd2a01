"""The exceptions of Flask-CoCart-JWT.

:class:`CoCartJWTError` is the root of everything the extension raises on
purpose. :class:`ConfigurationError` is raised at start-up (``init_app``) and
:class:`AuthError` and its subclasses are raised while handling a request; each
knows its HTTP status and error code and renders as the JSON body of the
contract::

    {"error": "<code>", "message": "<sentence>"}

The messages are fixed sentences: they never echo a token nor say which
internal check failed beyond the error code.
"""

from __future__ import annotations

from typing import ClassVar


class CoCartJWTError(Exception):
    """Root of all exceptions raised by Flask-CoCart-JWT."""


class ConfigurationError(CoCartJWTError):
    """The extension is configured wrongly.

    Raised by :meth:`~flask_cocart_jwt.CoCartJWT.init_app` so that a typo, a
    weak key or an unsupported algorithm fails at start-up instead of at the
    first request. The message says how to fix it.
    """


class AuthError(CoCartJWTError):
    """A request was refused. Renders as the contract's JSON error.

    :param message: overrides the default sentence of the error code. Never
        put a token or secret in it.
    :param retry_after: seconds the client should wait, sent as
        ``Retry-After`` (rate limits and unavailable services).
    """

    status_code: ClassVar[int] = 401
    error: ClassVar[str] = "invalid_token"
    default_message: ClassVar[str] = "The request could not be authenticated."
    #: Whether the client sent a credential with the request; a 401 then
    #: carries ``error="invalid_token"`` in ``WWW-Authenticate``.
    token_sent: ClassVar[bool] = True

    def __init__(self, message: str | None = None, *, retry_after: int | None = None):
        self.message = message or self.default_message
        self.retry_after = retry_after
        super().__init__(self.message)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(error={self.error!r}, message={self.message!r})"

    @property
    def headers(self) -> dict[str, str]:
        """The HTTP headers that go with this error."""
        headers: dict[str, str] = {}
        if self.status_code == 401:
            if self.token_sent:
                headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
            else:
                headers["WWW-Authenticate"] = 'Bearer realm="api"'
        if self.retry_after is not None:
            headers["Retry-After"] = str(self.retry_after)
        return headers

    def to_dict(self) -> dict[str, str]:
        """The JSON body of the error."""
        return {"error": self.error, "message": self.message}


class InvalidRequest(AuthError):
    """Malformed JSON, a missing or ill-typed field, or oversized input."""

    status_code = 400
    error = "invalid_request"
    default_message = "The request body is malformed or a field is missing or invalid."


class InvalidCredentials(AuthError):
    """Login failed. The same answer for an unknown user and a wrong password."""

    error = "invalid_credentials"
    default_message = "The username or password is incorrect."
    token_sent = False


class MissingToken(AuthError):
    """A protected view was called without an access token."""

    error = "missing_token"
    default_message = "An access token is required."
    token_sent = False


class InvalidToken(AuthError):
    """The access token is malformed, forged, of the wrong type or audience."""

    error = "invalid_token"
    default_message = "The access token is invalid."


class TokenExpired(AuthError):
    """The access token is past its ``exp``.

    :param expired_at: the token's ``exp``, Unix seconds.
    """

    error = "token_expired"
    default_message = "The access token has expired."

    def __init__(
        self,
        message: str | None = None,
        *,
        retry_after: int | None = None,
        expired_at: float | None = None,
    ):
        super().__init__(message, retry_after=retry_after)
        #: The token's ``exp`` (Unix seconds), when known.
        self.expired_at = expired_at


class SessionRevoked(AuthError):
    """The access token belongs to a revoked session."""

    error = "session_revoked"
    default_message = "The session of this access token has been revoked."


class FreshTokenRequired(AuthError):
    """A ``fresh=True`` view was called with a token obtained by refresh."""

    error = "fresh_token_required"
    default_message = "This action requires a fresh login."


class UserNotFound(AuthError):
    """The ``user_loader`` callback returned ``None`` for the token's identity."""

    error = "user_not_found"
    default_message = "The user of this token no longer exists."


class InvalidRefreshToken(AuthError):
    """The refresh token is unknown, malformed, revoked or of another session."""

    error = "invalid_refresh_token"
    default_message = "The refresh token is invalid."


class RefreshTokenExpired(AuthError):
    """The refresh token or its session is past expiry."""

    error = "refresh_token_expired"
    default_message = "The refresh token has expired."


class RefreshTokenReused(AuthError):
    """A consumed refresh token was replayed; its session is now revoked.

    :param session_id: the session that was revoked.
    """

    error = "refresh_token_reused"
    default_message = "The refresh token was already used; the session has been revoked."

    def __init__(
        self,
        message: str | None = None,
        *,
        retry_after: int | None = None,
        session_id: str | None = None,
    ):
        super().__init__(message, retry_after=retry_after)
        #: The id of the revoked session, when known.
        self.session_id = session_id


class CsrfFailed(AuthError):
    """A cookie-mode request failed the CSRF check (``COCART_JWT_COOKIE_MODE``).

    Its ``Origin`` is not the API's own nor a trusted one, or its CSRF header
    does not match a CSRF cookie of its session. Nothing was rotated, revoked
    or set.

    :param reason: which check failed, for logs and handlers: ``"origin"``,
        ``"token"`` or ``"session"``. It is never sent to the client.

    .. versionadded:: 0.2
    """

    status_code = 403
    error = "csrf_failed"
    default_message = "The request failed the cross-site request forgery check."
    token_sent = False

    def __init__(
        self,
        message: str | None = None,
        *,
        retry_after: int | None = None,
        reason: str = "token",
    ):
        super().__init__(message, retry_after=retry_after)
        #: The check that failed: ``"origin"``, ``"token"`` or ``"session"``.
        self.reason = reason


class InvalidDPoPProof(AuthError):
    """The DPoP proof of a request is missing, malformed, forged, replayed or
    made by another key than the token's (``COCART_JWT_DPOP``, RFC 9449).

    Its ``WWW-Authenticate`` is the DPoP challenge with the accepted
    algorithms: ``DPoP error="invalid_dpop_proof", algs="ES256 EdDSA ..."``.

    :param algs: the accepted proof algorithms, space-separated.

    .. versionadded:: 0.2
    """

    error = "invalid_dpop_proof"
    default_message = "The DPoP proof is missing or invalid."

    def __init__(
        self, message: str | None = None, *, retry_after: int | None = None, algs: str = ""
    ):
        super().__init__(message, retry_after=retry_after)
        #: The accepted proof algorithms, space-separated.
        self.algs = algs

    def challenge(self) -> str:
        """The ``WWW-Authenticate`` value of this error."""
        algs = f', algs="{self.algs}"' if self.algs else ""
        return f'DPoP error="{self.error}"{algs}'

    @property
    def headers(self) -> dict[str, str]:
        """The DPoP challenge instead of the Bearer one."""
        return {**super().headers, "WWW-Authenticate": self.challenge()}


class UseDPoPNonce(InvalidDPoPProof):
    """The DPoP proof lacks the server's current nonce (``COCART_JWT_DPOP_NONCE``,
    RFC 9449 section 8): retry with the nonce of the ``DPoP-Nonce`` header.

    :param nonce: the fresh nonce, sent as ``DPoP-Nonce``.

    .. versionadded:: 0.2
    """

    error = "use_dpop_nonce"
    default_message = "The DPoP proof must carry the server's nonce: retry with DPoP-Nonce."

    def __init__(
        self,
        message: str | None = None,
        *,
        retry_after: int | None = None,
        algs: str = "",
        nonce: str = "",
    ):
        super().__init__(message, retry_after=retry_after, algs=algs)
        #: The nonce to use, sent as ``DPoP-Nonce``.
        self.nonce = nonce

    @property
    def headers(self) -> dict[str, str]:
        """The DPoP challenge and the fresh ``DPoP-Nonce``."""
        headers = super().headers
        if self.nonce:
            headers["DPoP-Nonce"] = self.nonce
        return headers


class RateLimited(AuthError):
    """A rate limit was exceeded.

    :param retry_after: seconds until the limit resets. Pass the real value;
        the default of a minute only makes sure ``Retry-After`` is never
        missing from a 429.
    :param scope: the limit that was exceeded, e.g. ``"login_per_ip"``
        (``None`` for a 429 of the app's own Flask-Limiter).
    """

    status_code = 429
    error = "rate_limited"
    default_message = "Too many requests. Try again later."

    def __init__(
        self,
        message: str | None = None,
        *,
        retry_after: int | None = 60,
        scope: str | None = None,
    ):
        super().__init__(message, retry_after=retry_after)
        #: The limit that was exceeded (e.g. ``"refresh_per_ip"``), when known.
        self.scope = scope


class ServiceUnavailable(AuthError):
    """The database or the rate-limit storage cannot be reached."""

    status_code = 503
    error = "service_unavailable"
    default_message = "The service is temporarily unavailable. Try again later."

    def __init__(self, message: str | None = None, *, retry_after: int | None = 5):
        super().__init__(message, retry_after=retry_after)


class NotFound(AuthError):
    """No such route under the URL prefix, or no such session of the user."""

    status_code = 404
    error = "not_found"
    default_message = "Not found."
    token_sent = False


class MethodNotAllowed(AuthError):
    """A token route was called with a method it does not take.

    :param allow: the methods the route takes, sent as ``Allow``.
    """

    status_code = 405
    error = "method_not_allowed"
    default_message = "This route does not accept this method."
    token_sent = False

    def __init__(
        self, message: str | None = None, *, retry_after: int | None = None, allow: str = ""
    ):
        super().__init__(message, retry_after=retry_after)
        #: The value of the ``Allow`` header: the route's own methods.
        self.allow = allow

    @property
    def headers(self) -> dict[str, str]:
        """``Allow`` with the route's own methods."""
        return {**super().headers, "Allow": self.allow}

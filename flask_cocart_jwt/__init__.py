"""Flask-CoCart-JWT: dual-token JWT authentication for Flask APIs."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from .context import (
    current_user,
    decode_token,
    get_current_user,
    get_jwt,
    get_jwt_identity,
    verify_jwt_in_request,
)
from .decorators import jwt_required
from .exceptions import (
    AuthError,
    CoCartJWTError,
    ConfigurationError,
    CsrfFailed,
    FreshTokenRequired,
    InvalidCredentials,
    InvalidDPoPProof,
    InvalidRefreshToken,
    InvalidRequest,
    InvalidToken,
    MethodNotAllowed,
    MissingToken,
    NotFound,
    RateLimited,
    RefreshTokenExpired,
    RefreshTokenReused,
    ServiceUnavailable,
    SessionRevoked,
    TokenExpired,
    UseDPoPNonce,
    UserNotFound,
)
from .extension import CoCartJWT
from .results import SessionInfo, TokenPair
from .signals import (
    rate_limit_exceeded,
    refresh_token_reused,
    session_revoked,
    token_refreshed,
    token_validated,
    tokens_issued,
)

try:
    __version__ = version("Flask-CoCart-JWT")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "AuthError",
    "CoCartJWT",
    "CoCartJWTError",
    "ConfigurationError",
    "CsrfFailed",
    "FreshTokenRequired",
    "InvalidCredentials",
    "InvalidDPoPProof",
    "InvalidRefreshToken",
    "InvalidRequest",
    "InvalidToken",
    "MethodNotAllowed",
    "MissingToken",
    "NotFound",
    "RateLimited",
    "RefreshTokenExpired",
    "RefreshTokenReused",
    "ServiceUnavailable",
    "SessionInfo",
    "SessionRevoked",
    "TokenExpired",
    "TokenPair",
    "UseDPoPNonce",
    "UserNotFound",
    "__version__",
    "current_user",
    "decode_token",
    "get_current_user",
    "get_jwt",
    "get_jwt_identity",
    "jwt_required",
    "rate_limit_exceeded",
    "refresh_token_reused",
    "session_revoked",
    "token_refreshed",
    "token_validated",
    "tokens_issued",
    "verify_jwt_in_request",
]

"""The public value types returned by the extension's API."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


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
        """The token response body of the contract."""
        return {
            "access_token": self.access_token,
            "token_type": self.token_type,
            "expires_in": self.expires_in,
            "refresh_token": self.refresh_token,
            "refresh_token_expires_in": self.refresh_token_expires_in,
            "session_id": self.session_id,
        }


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """One live session (refresh-token family) of a user.

    Times are Unix seconds. ``current`` is true for the session of the access
    token that made the request.
    """

    id: str
    created_at: int
    last_used_at: int
    expires_at: int
    ip: str | None
    user_agent: str | None
    current: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The JSON form used by ``GET /sessions``."""
        return asdict(self)

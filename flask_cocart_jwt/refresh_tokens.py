"""Refresh tokens as values: their form, their stored hash, their shape check.

A refresh token is ``rt_`` followed by 256 random bits in base64url. Only its
SHA-256 is stored; successors are derived by the extension (an HMAC of the
parent) so that a retry inside the reuse interval gets the same one.
"""

from __future__ import annotations

import hashlib
import secrets

REFRESH_TOKEN_PREFIX = "rt_"  # noqa: S105
#: The longest ``refresh_token`` field read at all (longer is ``invalid_request``).
#: It is above the longest access token, so that an access token sent as a
#: refresh token is told that it is not one (``invalid_refresh_token``).
MAX_REFRESH_TOKEN_CHARS = 8192
#: The longest string that can be a refresh token (``rt_`` + 43 characters).
_REFRESH_TOKEN_SHAPE_MAX = 128


def hash_refresh_token(token: str) -> str:
    """The stored form of a refresh token: SHA-256, hex.

    A fast hash is right here: the token carries 256 random bits, so there is
    nothing to brute-force, and the hash is the lookup key.
    """
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_refresh_token() -> str:
    """A new random refresh token (256 bits)."""
    return REFRESH_TOKEN_PREFIX + secrets.token_urlsafe(32)


def stored_user_agent(user_agent: str | None) -> str | None:
    """The ``User-Agent`` as kept with a session.

    NUL bytes are dropped (PostgreSQL refuses them in text) and the rest is cut
    to the column's 255 characters.
    """
    return (user_agent or "").replace("\x00", "")[:255] or None


def stored_ip(ip: str | None) -> str | None:
    """The client address as kept with a session: cut to the column's 45 characters.

    45 is the longest textual IPv6 address; a longer value (an IPv6 zone id, or
    whatever a proxy middleware put in ``REMOTE_ADDR``) is compared cut too.
    """
    return (ip or "")[:45] or None


def looks_like_refresh_token(token: object) -> bool:
    """Whether ``token`` has the shape of a refresh token (cheap pre-check)."""
    return (
        isinstance(token, str)
        and token.startswith(REFRESH_TOKEN_PREFIX)
        and 16 < len(token) <= _REFRESH_TOKEN_SHAPE_MAX
        and token.isascii()
    )

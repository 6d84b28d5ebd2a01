"""Refresh tokens as values: their form, their stored hash, their shape check.

A refresh token is ``rt_`` followed by 256 random bits in base64url. Only its
SHA-256 is stored; successors are derived by :mod:`flask_cocart_jwt.rotation`
(an HMAC of the parent) so that a retry inside the reuse interval gets the
same one.
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


def looks_like_refresh_token(token: object) -> bool:
    """Whether ``token`` has the shape of a refresh token (cheap pre-check)."""
    return (
        isinstance(token, str)
        and token.startswith(REFRESH_TOKEN_PREFIX)
        and 16 < len(token) <= _REFRESH_TOKEN_SHAPE_MAX
        and token.isascii()
    )

"""A process's memo of the access tokens it has verified, for their next requests.

A client sends the same access token with each request until it refreshes
it, and every check of :func:`~flask_cocart_jwt.tokens.decode_access_token`
but the clock gives the same answer for the same token: its signature, its
header, its parsing and its claims' shapes cannot change. So the claims of a
token that passed are kept here, keyed by the whole token (compared in full,
not by a hash alone), and its next requests only check the time again:
``exp`` (with the leeway), and ``nbf``/``iat`` in case the clock went back.
The revocation check, DPoP binding, CSRF, rate limits and the user loader
still run on every request.

Only what passed is remembered, so a forged token never gets in; only claims
whose every value is a string, number, boolean or null are kept (a token with
a list or an object in it, such as ``cnf`` of a DPoP-bound token, is decoded
each time), and each request gets a copy, so a view that changes the claims
it was given changes nothing here. The memo holds at most
``COCART_JWT_VERIFIED_TOKEN_CACHE_SIZE`` tokens and starts over when full; a
size of ``0`` turns it off. Each worker process has its own.

.. versionadded:: 0.2
"""

from __future__ import annotations

from typing import Any

from .config import Settings
from .tokens import decode_access_token

_FLAT = frozenset({str, int, float, bool, type(None)})


class VerifiedTokens:
    """The claims of recently verified access tokens, by token.

    :param settings: the app's settings: the keys and rules of
        :func:`~flask_cocart_jwt.tokens.decode_access_token`, the leeway and
        ``verified_token_cache_size``, the most tokens remembered.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.size = settings.verified_token_cache_size
        self.leeway = settings.leeway
        #: token -> (its claims, latest time it may be used, earliest time).
        self._claims: dict[str, tuple[dict[str, Any], float, float]] = {}

    def __len__(self) -> int:
        return len(self._claims)

    def decode(self, token: str, now: float) -> dict[str, Any]:
        """The claims of access token ``token`` at ``now``: remembered, or verified in full.

        :raises InvalidToken: for anything but a valid, current access token.
        :raises TokenExpired: for a valid token past its ``exp``.
        """
        claims = self.get(token, now)
        if claims is None:
            claims = decode_access_token(token, self.settings, now)
            self.add(token, claims)
        return claims

    def get(self, token: str, now: float) -> dict[str, Any] | None:
        """A copy of the claims of ``token`` if it was verified and is current at ``now``.

        ``None`` for a token not remembered, or no longer (or not yet) valid
        by the clock: decode it in full, which says why.
        """
        entry = self._claims.get(token)
        if entry is None:
            return None
        claims, latest, earliest = entry
        if not earliest <= now < latest:
            self._claims.pop(token, None)
            return None
        return claims.copy()

    def add(self, token: str, claims: dict[str, Any]) -> None:
        """Remember the claims of ``token``, which passed every check just now."""
        if not self.size or not all(type(value) in _FLAT for value in claims.values()):
            return
        memo = self._claims
        if len(memo) >= self.size:
            memo.clear()  # start over: cheap, and what is in use comes back at once
        leeway = self.leeway
        earliest = max(claims["iat"], claims.get("nbf", claims["iat"])) - leeway
        memo[token] = (claims.copy(), claims["exp"] + leeway, earliest)

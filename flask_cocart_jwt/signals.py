"""Blinker signals sent by the extension.

Each is sent with the app as sender and keyword arguments described below.
Receivers must never log the tokens themselves.

.. versionadded:: 0.1
"""

from __future__ import annotations

from blinker import Namespace

_signals = Namespace()

#: Sent after a login or :meth:`~flask_cocart_jwt.CoCartJWT.issue_tokens`:
#: ``identity``, ``session_id``.
tokens_issued = _signals.signal("cocart-jwt-tokens-issued")
#: Sent after a successful refresh: ``identity``, ``session_id``, ``rotated``
#: (``False`` for a retry inside the reuse interval).
token_refreshed = _signals.signal("cocart-jwt-token-refreshed")
#: Sent after ``POST /validate-token`` accepted a token: ``identity``, ``session_id``.
token_validated = _signals.signal("cocart-jwt-token-validated")
#: Sent when a consumed refresh token was replayed and its session revoked:
#: ``identity``, ``session_id``.
refresh_token_reused = _signals.signal("cocart-jwt-refresh-token-reused")
#: Sent when sessions are revoked: ``session_ids`` (a list), ``reason``.
session_revoked = _signals.signal("cocart-jwt-session-revoked")
#: Sent when a request is refused by a rate limit: ``limit`` (the limit
#: string), ``scope`` (e.g. ``"refresh_per_ip"``).
rate_limit_exceeded = _signals.signal("cocart-jwt-rate-limit-exceeded")

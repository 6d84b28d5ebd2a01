"""What the extension learns about the current request, kept on the request itself.

One record per request: the verified access token and its user (read by
``get_jwt`` and ``current_user``) and the rate limits the request hit (read
by the header hook). It is an attribute of the request object it describes,
so it lives and dies with that request: ``g`` belongs to the app context,
which can outlive one request (a test that pushes ``app.app_context()``
around several requests), and a later request must never see an earlier
one's claims. Reaching it is also cheaper than going through ``g``'s proxy:
``get_jwt_identity()`` costs well under a microsecond.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from flask import request

#: The attribute of the request object that holds the record.
ATTRIBUTE = "_cocart_jwt"
#: The current request object; raises ``RuntimeError`` outside a request.
current_request = request._get_current_object  # type: ignore[attr-defined]


@dataclass(slots=True)
class Usage:
    """How much of one rate limit the current request left."""

    policy: str
    amount: int
    window: int
    remaining: int
    reset: float
    breached: bool

    def retry_after(self, now: float) -> int:
        """Whole seconds until the limit lets a request through again."""
        return max(1, math.ceil(self.reset - now))


class RequestState:
    """The extension's record of one request."""

    __slots__ = ("claims", "policies", "usages", "user", "verified")

    def __init__(self) -> None:
        #: Whether ``verify_jwt_in_request`` ran for this request.
        self.verified = False
        #: The verified claims; ``None`` when an optional view got no token.
        self.claims: dict[str, Any] | None = None
        #: What ``user_loader`` returned for the token, if one is set.
        self.user: Any = None
        #: The rate limits hit by the request, by policy name.
        self.usages: dict[str, Usage] = {}
        #: Every rate limit of the routes the request reached, hit or not:
        #: policy name -> (amount, window in seconds), in the routes' order.
        self.policies: dict[str, tuple[int, int]] = {}


def request_state(*, create: bool = False) -> RequestState | None:
    """The record of the current request; with ``create``, made if missing.

    :raises RuntimeError: outside a request context.
    """
    current = current_request()
    state: RequestState | None = getattr(current, ATTRIBUTE, None)
    if state is None and create:
        state = RequestState()
        setattr(current, ATTRIBUTE, state)
    return state

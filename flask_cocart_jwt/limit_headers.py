"""Rate-limit headers: what a limited response tells the client.

Every response of a request that hit a limit carries ``X-RateLimit-Limit``,
``X-RateLimit-Remaining`` and ``X-RateLimit-Reset`` (Unix time) of the most
restrictive limit it hit, and ``Retry-After`` on a 429. With
``COCART_JWT_RATELIMIT_DRAFT_HEADERS`` the IETF draft's ``RateLimit-Policy``
and ``RateLimit`` fields follow: the policy lists every limit of the route, in
the same order on every answer (a 429 included, which stops counting at the
limit it breached), and ``RateLimit`` gives the state of the most restrictive.

.. versionadded:: 0.1
"""

from __future__ import annotations

import math
import time

from flask import Response

from .request_state import Usage, request_state


def restrictiveness(usage: Usage) -> tuple[bool, int, float]:
    """Sort key: a breached limit first, then the fewest remaining, then the latest reset."""
    return (not usage.breached, usage.remaining, -usage.reset)


def add_headers(response: Response, *, draft: bool) -> Response:
    """Add the headers of the limits the current request hit to ``response``.

    :param draft: add the IETF draft's ``RateLimit-Policy`` / ``RateLimit`` too.
    """
    state = request_state()
    if state is None or not state.usages:
        return response
    usages = state.usages
    now = time.time()
    top = min(usages.values(), key=restrictiveness)
    headers = response.headers
    headers["X-RateLimit-Limit"] = str(top.amount)
    headers["X-RateLimit-Remaining"] = str(top.remaining)
    headers["X-RateLimit-Reset"] = str(math.ceil(top.reset))
    if top.breached and response.status_code == 429 and "Retry-After" not in headers:
        headers["Retry-After"] = str(top.retry_after(now))
    if draft:
        policies = dict(state.policies)
        for usage in usages.values():
            policies.setdefault(usage.policy, (usage.amount, usage.window))
        headers["RateLimit-Policy"] = ", ".join(
            f'"{name}";q={amount};w={window}' for name, (amount, window) in policies.items()
        )
        headers["RateLimit"] = (
            f'"{top.policy}";r={top.remaining};t={max(0, math.ceil(top.reset - now))}'
        )
    return response

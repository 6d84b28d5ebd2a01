"""The replay cache of DPoP proofs: each ``jti`` accepted once within its window.

It lives in the rate-limit storage (``COCART_JWT_RATELIMIT_STORAGE_URI``, or
the storage of the ``Limiter`` given to the extension): in memory by default,
shared by every worker and host on Redis. A proof id is a counter key with an
expiry, incremented through the storage's public ``incr``, which is atomic on
every storage of ``limits``: the request that makes it 1 is the first use.

While the storage is down it follows ``COCART_JWT_RATELIMIT_ON_STORAGE_ERROR``
with the rate limits' own back-off state: ``"fallback"`` remembers in the
process's memory, ``"reject"`` answers 503, ``"allow"`` lets proofs through
unchecked for replay (every other check still runs).

.. versionadded:: 0.2
"""

from __future__ import annotations

from .limits import KEY_NAMESPACE, RateLimits


class ReplayCache:
    """Proof ids seen recently, in the storage of ``limits``.

    :param limits: the app's rate limiter; with rate limits disabled, one
        made for this cache alone (its limits are never counted).
    """

    def __init__(self, limits: RateLimits) -> None:
        self.limits = limits
        self.prefix = f"{KEY_NAMESPACE}/{limits.namespace}/dpop_jti/"

    def first_use(self, subject: str, expiry: int) -> bool:
        """Remember ``subject`` for ``expiry`` seconds; whether it was new.

        :param subject: a keyed hash of the proof's key and ``jti``.
        :raises ServiceUnavailable: the storage is down in ``"reject"`` mode.
        """
        limits = self.limits
        key = self.prefix + subject
        health = limits.health()
        epoch = health.admit()  # None: the storage is down, and no health check is due
        limiter = limits.degraded() if epoch is None else limits.primary()
        if limiter is None:
            return True  # "allow"
        try:
            return limiter.storage.incr(key, expiry) == 1
        except Exception as exc:  # the storage failed
            if epoch is None:  # the fallback itself
                raise
            health.failed(exc, epoch)
            degraded = limits.degraded()
            return degraded is None or degraded.storage.incr(key, expiry) == 1

"""The replay cache of DPoP proofs: each ``jti`` accepted once within its window.

It lives in the rate-limit storage (``COCART_JWT_RATELIMIT_STORAGE_URI``, or
the storage of the ``Limiter`` given to the extension): in memory by default,
shared by every worker and host on Redis. A proof id is a counter key with an
expiry, incremented through the storage's public ``incr``, which is atomic on
every storage of ``limits``: the request that makes it 1 is the first use.

On a memory storage the ids are kept in a dictionary of this process instead,
dropped in order as they expire: ``limits``' own memory storage walks every
key it holds on each of its expiry sweeps (every 10 ms), which a busy API's
proof ids would make its slowest part.

While the storage is down it follows ``COCART_JWT_RATELIMIT_ON_STORAGE_ERROR``
with the rate limits' own back-off state: ``"fallback"`` remembers in the
process's memory, ``"reject"`` answers 503, ``"allow"`` lets proofs through
unchecked for replay (every other check still runs).

.. versionadded:: 0.2
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from limits.storage import MemoryStorage
from limits.strategies import RateLimiter

from .limits import KEY_NAMESPACE, RateLimits


class ProofIds:
    """Proof ids remembered in this process, each until its own expiry.

    Kept in insertion order, so expired ids are dropped from the front in
    constant time per id; with one expiry for every id (the proof window,
    as :class:`~.dpop.ProofChecker` uses it) that order is the expiry order.

    :param clock: the monotonic clock, in seconds (replaced in tests).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._expiries: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._expiries)

    def first_use(self, key: str, expiry: int) -> bool:
        """Remember ``key`` for ``expiry`` seconds; whether it was not remembered yet."""
        now = self._clock()
        with self._lock:
            expiries = self._expiries
            while expiries:
                oldest = next(iter(expiries))
                if expiries[oldest] > now:
                    break
                del expiries[oldest]
            until = expiries.get(key)
            if until is not None and until > now:
                return False
            expiries[key] = now + expiry
            expiries.move_to_end(key)
            return True


class ReplayCache:
    """Proof ids seen recently, in the storage of ``limits``.

    :param limits: the app's rate limiter; with rate limits disabled, one
        made for this cache alone (its limits are never counted).
    """

    def __init__(self, limits: RateLimits) -> None:
        self.limits = limits
        self.prefix = f"{KEY_NAMESPACE}/{limits.namespace}/dpop_jti/"
        #: The ids of this process, for a memory storage and the fallback.
        self.in_process = ProofIds()

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
            return self._first_use(limiter, key, expiry)
        except Exception as exc:  # the storage failed
            if epoch is None:  # the fallback itself
                raise
            health.failed(exc, epoch)
            degraded = limits.degraded()
            return degraded is None or self._first_use(degraded, key, expiry)

    def _first_use(self, limiter: RateLimiter, key: str, expiry: int) -> bool:
        if isinstance(limiter.storage, MemoryStorage):
            return self.in_process.first_use(key, expiry)
        return limiter.storage.incr(key, expiry) == 1

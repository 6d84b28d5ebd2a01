"""Hit a rate limit and read its window in one step.

The headers of a limited response need each hit limit's remaining count and
reset time, so every hit is followed by a read of its window. Through the
``limits`` strategies that is two storage calls; on Redis, two round trips.
:func:`counter_for` picks how to do it for a strategy:

* Generic (any storage, any strategy): ``hit`` then ``get_window_stats``,
  or only ``get_window_stats`` for a check that does not consume.
* Redis with the moving window (the default strategy): the two Lua scripts
  that ``limits`` registers for that strategy, sent in one pipeline, so a hit
  costs one round trip. The keys, scripts and arithmetic are those of
  ``limits`` itself, so counts stay shared with the generic path, with other
  processes and with Flask-Limiter on the same storage. This reads
  attributes of ``limits``' Redis storage that are not its public API, so it
  is used only with the ``limits`` versions it was written and tested
  against (:data:`FAST_PATH_LIMITS_VERSIONS`); any other version counts
  through the public API, with two round trips.

.. versionadded:: 0.1
"""

from __future__ import annotations

import time
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from limits import RateLimitItem
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter, RateLimiter
from limits.util import WindowStats

#: ``counter(item, identifiers, consume) -> (allowed, stats after the hit)``.
Counter = Callable[[RateLimitItem, tuple[str, ...], bool], tuple[bool, WindowStats]]

_SCRIPTS = ("lua_acquire_moving_window", "lua_moving_window")

#: The major versions of ``limits`` whose Redis storage the one-round-trip path
#: was written and tested against (its scripts, ``prefixed_key``, ``dependency``).
FAST_PATH_LIMITS_VERSIONS = (5,)


def _limits_major() -> int | None:
    try:
        return int(version("limits").split(".")[0])
    except (PackageNotFoundError, ValueError):  # pragma: no cover - odd installs
        return None


_LIMITS_MAJOR = _limits_major()


def counter_for(limiter: RateLimiter) -> Counter:
    """The fastest exact way to hit ``limiter``'s limits and read their windows."""
    storage = limiter.storage
    if (
        _LIMITS_MAJOR in FAST_PATH_LIMITS_VERSIONS
        and type(limiter) is MovingWindowRateLimiter
        and type(storage) is RedisStorage  # not Sentinel or Cluster: their own clients
        and all(hasattr(storage, name) for name in (*_SCRIPTS, "dependency"))
    ):
        return _RedisMovingWindow(storage)
    return _generic(limiter)


def _generic(limiter: RateLimiter) -> Counter:
    def count(
        item: RateLimitItem, identifiers: tuple[str, ...], consume: bool
    ) -> tuple[bool, WindowStats]:
        if consume:
            allowed = limiter.hit(item, *identifiers)
            return allowed, limiter.get_window_stats(item, *identifiers)
        # ``test`` is ``remaining >= 1`` for every strategy: one read, not two.
        stats = limiter.get_window_stats(item, *identifiers)
        return stats.remaining >= 1, stats

    return count


class _RedisMovingWindow:
    """Acquire an entry and read the moving window in one Redis round trip.

    Mirrors ``RedisStorage.acquire_entry`` and ``get_moving_window``, with
    both scripts sent by hash (``EVALSHA``) in one non-transactional pipeline.
    A script missing from the server (after ``SCRIPT FLUSH`` or a fail-over)
    is run again through its ``Script`` object, which loads it.

    Like every call of the client library, the pipeline is retried on a
    connection error or timeout; a hit whose reply was lost that way may be
    counted twice, as with ``limits``' own ``acquire_entry``.
    """

    def __init__(self, storage: RedisStorage) -> None:
        # The client library of this storage: redis, or valkey for valkey:// URIs.
        self.missing: type[Exception] = storage.dependency.exceptions.NoScriptError
        self.storage = storage
        self.acquire = storage.lua_acquire_moving_window
        self.window = storage.lua_moving_window

    def __call__(
        self, item: RateLimitItem, identifiers: tuple[str, ...], consume: bool
    ) -> tuple[bool, WindowStats]:
        key = self.storage.prefixed_key(item.key_for(*identifiers))
        amount, expiry = item.amount, item.get_expiry()
        now = time.time()
        window_args = (now - expiry, amount)
        if not consume:
            stats = self._stats(self.window([key], window_args), now, amount, expiry)
            return stats.remaining >= 1, stats
        acquire_args = (now, amount, expiry, 1)
        client: Any = self.storage.get_connection()
        pipe = client.pipeline(transaction=False)
        pipe.evalsha(self.acquire.sha, 1, key, *acquire_args)
        pipe.evalsha(self.window.sha, 1, key, *window_args)
        acquired, window = pipe.execute(raise_on_error=False)
        if isinstance(acquired, self.missing):
            acquired = self.acquire([key], acquire_args)
            window = self.window([key], window_args)
        elif isinstance(window, self.missing):
            window = self.window([key], window_args)
        for result in (acquired, window):
            if isinstance(result, Exception):
                raise result
        return bool(acquired), self._stats(window, now, amount, expiry)

    @staticmethod
    def _stats(window: Any, now: float, amount: int, expiry: int) -> WindowStats:
        if window:
            oldest, count = float(window[0]), int(window[1])
            return WindowStats(oldest + expiry, amount - count)
        return WindowStats(now + expiry, amount)

"""Hit-and-read counters (``flask_cocart_jwt.counting``) against ``limits`` itself.

The pipelined Redis counter must count exactly as the ``limits`` strategy
does: same keys, same answers, same windows. These tests run it side by side
with the strategy on a real Redis, and cause the one fault it handles itself
(scripts flushed from the server) for real with ``SCRIPT FLUSH``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from limits import parse
from limits.storage import MemoryStorage, RedisStorage, storage_from_string
from limits.strategies import STRATEGIES, MovingWindowRateLimiter, RateLimiter

from flask_cocart_jwt.counting import _RedisMovingWindow, counter_for
from tests.conftest import require_server

ITEM = parse("3 per minute")


@pytest.fixture
def redis_limiter() -> Iterator[MovingWindowRateLimiter]:
    url = require_server("redis")
    storage = storage_from_string(url)
    assert isinstance(storage, RedisStorage)
    yield MovingWindowRateLimiter(storage)
    client: Any = storage.get_connection()
    keys = list(client.scan_iter(match="LIMITS:LIMITER/test-counting/*"))
    if keys:
        client.delete(*keys)
    client.close()


def subject() -> tuple[str, ...]:
    return ("test-counting", uuid.uuid4().hex)


def test_redis_moving_window_is_pipelined(redis_limiter: MovingWindowRateLimiter) -> None:
    # Pins the fast path to the installed ``limits``: an upgrade that renames
    # its scripts fails here instead of silently doubling the round trips.
    assert isinstance(counter_for(redis_limiter), _RedisMovingWindow)


def test_valkey_client_is_pipelined_too() -> None:
    # valkey:// URIs use the valkey client library, whose NoScriptError is its
    # own class: a flushed script must still be loaded again, not fail.
    url = require_server("redis").replace("redis://", "valkey://", 1)
    limiter = MovingWindowRateLimiter(storage_from_string(url))
    count, who = counter_for(limiter), subject()
    assert isinstance(count, _RedisMovingWindow)
    client: Any = limiter.storage.get_connection()
    try:
        client.script_flush()
        assert count(ITEM, who, True)[1].remaining == 2
        assert count(ITEM, who, True)[1].remaining == 1
        assert limiter.get_window_stats(ITEM, *who).remaining == 1
    finally:
        client.delete(limiter.storage.prefixed_key(ITEM.key_for(*who)))
        client.close()


def test_other_strategies_and_storages_are_generic() -> None:
    storage = MemoryStorage()
    for strategy in STRATEGIES.values():
        assert not isinstance(counter_for(strategy(storage)), _RedisMovingWindow)


def test_pipelined_counts_as_limits_does(redis_limiter: MovingWindowRateLimiter) -> None:
    count = counter_for(redis_limiter)
    ours, theirs = subject(), subject()
    for _ in range(5):
        allowed, stats = count(ITEM, ours, True)
        expected_allowed = redis_limiter.hit(ITEM, *theirs)
        expected = redis_limiter.get_window_stats(ITEM, *theirs)
        assert allowed is expected_allowed
        assert stats.remaining == expected.remaining
        assert stats.reset_time == pytest.approx(expected.reset_time, abs=1.0)
    # The same keys as the strategy: it reads what the pipeline wrote.
    assert redis_limiter.get_window_stats(ITEM, *ours).remaining == 0
    assert redis_limiter.test(ITEM, *ours) is False


def test_first_hit_reports_the_window(redis_limiter: MovingWindowRateLimiter) -> None:
    allowed, stats = counter_for(redis_limiter)(ITEM, subject(), True)
    assert allowed is True
    assert stats.remaining == 2
    first = redis_limiter.get_window_stats(ITEM, "test-counting", "never-hit")
    assert first.remaining == 3  # an empty window: nothing to read back


def test_check_without_consuming(redis_limiter: MovingWindowRateLimiter) -> None:
    count, who = counter_for(redis_limiter), subject()
    for remaining in (3, 2, 1):
        allowed, stats = count(ITEM, who, False)
        assert (allowed, stats.remaining) == (True, remaining)
        assert redis_limiter.get_window_stats(ITEM, *who).remaining == remaining
        count(ITEM, who, True)
    allowed, stats = count(ITEM, who, False)
    assert (allowed, stats.remaining) == (False, 0)
    assert redis_limiter.get_window_stats(ITEM, *who).remaining == 0


@pytest.mark.parametrize("flushed", ["both", "window"])
def test_flushed_scripts_are_loaded_again(
    redis_limiter: MovingWindowRateLimiter, flushed: str
) -> None:
    storage: Any = redis_limiter.storage
    client = storage.get_connection()
    count, who = counter_for(redis_limiter), subject()
    count(ITEM, who, True)
    client.script_flush()
    if flushed == "window":
        client.script_load(storage.lua_acquire_moving_window.script)
    allowed, stats = count(ITEM, who, True)
    # Counted once, not twice, and read after the hit.
    assert (allowed, stats.remaining) == (True, 1)
    assert redis_limiter.get_window_stats(ITEM, *who).remaining == 1
    assert all(client.script_exists(storage.lua_moving_window.sha))


def test_storage_errors_propagate() -> None:
    import redis

    limiter = MovingWindowRateLimiter(storage_from_string("redis://127.0.0.1:1/0"))
    with pytest.raises(redis.ConnectionError):
        counter_for(limiter)(ITEM, subject(), True)


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_generic_check_matches_test(strategy: str) -> None:
    limiter: RateLimiter = STRATEGIES[strategy](MemoryStorage())
    count, who = counter_for(limiter), subject()
    for _ in range(4):
        expected = limiter.test(ITEM, *who)
        allowed, stats = count(ITEM, who, False)
        assert allowed is expected
        assert stats.remaining == limiter.get_window_stats(ITEM, *who).remaining
        limiter.hit(ITEM, *who)


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_generic_hit_reads_after_hitting(strategy: str) -> None:
    limiter: RateLimiter = STRATEGIES[strategy](MemoryStorage())
    count, who = counter_for(limiter), subject()
    answers = [count(ITEM, who, True) for _ in range(4)]
    assert [allowed for allowed, _ in answers] == [True, True, True, False]
    assert [stats.remaining for _, stats in answers] == [2, 1, 0, 0]

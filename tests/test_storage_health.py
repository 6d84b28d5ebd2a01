"""The back-off state of the rate-limit storage (:mod:`flask_cocart_jwt.storage_health`).

A fake clock and a probe the test controls: the state logic alone, without a
storage. ``tests/test_limits_redis.py`` drives it through an app and a real
Redis behind a proxy, ``tests/integration/test_redis_faults.py`` through
gunicorn workers and a Redis that is stopped and frozen.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from flask_cocart_jwt.storage_health import (
    PROBE_INTERVAL_MAX,
    PROBE_INTERVAL_MIN,
    StorageHealth,
)


class Clock:
    """Monotonic seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Probe:
    """A health check that answers what the test sets, and counts its calls."""

    def __init__(self) -> None:
        self.answer = False
        self.calls = 0

    def __call__(self) -> bool:
        self.calls += 1
        return self.answer


class Recorder:
    """The ``on_down`` / ``on_up`` calls."""

    def __init__(self) -> None:
        self.downs: list[Exception] = []
        self.ups: list[float] = []


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def probe() -> Probe:
    return Probe()


@pytest.fixture
def events() -> Recorder:
    return Recorder()


@pytest.fixture
def health(clock: Clock, probe: Probe, events: Recorder) -> StorageHealth:
    return StorageHealth(probe, on_down=events.downs.append, on_up=events.ups.append, clock=clock)


def test_up_until_a_count_fails(health: StorageHealth, probe: Probe) -> None:
    assert health.admit() == 0
    assert not health.down
    assert health.retry_after() == 0.0
    assert probe.calls == 0


def test_a_failure_begins_an_outage(
    health: StorageHealth, clock: Clock, probe: Probe, events: Recorder
) -> None:
    error = ConnectionError("refused")
    assert health.failed(error, health.admit() or 0) is True
    assert health.down
    assert health.down_since == clock.now
    assert health.interval == PROBE_INTERVAL_MIN
    assert health.retry_after() == PROBE_INTERVAL_MIN
    assert events.downs == [error]
    # Until the first probe is due, nobody touches the storage.
    clock.now += PROBE_INTERVAL_MIN / 2
    assert health.admit() is None
    assert probe.calls == 0


def test_concurrent_failures_are_one_outage(health: StorageHealth, events: Recorder) -> None:
    """Requests in flight when the storage fails all report it: one change of state."""
    epoch = health.admit()
    assert epoch is not None
    threads = 16
    barrier = threading.Barrier(threads)
    began: list[bool] = []

    def fail() -> None:
        barrier.wait()
        began.append(health.failed(TimeoutError(), epoch))

    workers = [threading.Thread(target=fail) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert sorted(began) == [False] * (threads - 1) + [True]
    assert len(events.downs) == 1
    assert health.interval == PROBE_INTERVAL_MIN  # not grown by the other 15
    assert health.epoch == epoch + 1


def test_the_back_off_grows_once_per_failed_probe_up_to_the_maximum(
    health: StorageHealth, clock: Clock, probe: Probe
) -> None:
    health.failed(ConnectionError(), 0)
    intervals = []
    for _ in range(6):
        clock.now = health.next_probe
        # Many requests at the moment the probe is due: one probe among them.
        assert [health.admit() for _ in range(10)] == [None] * 10
        intervals.append(health.interval)
    assert probe.calls == 6
    assert health.failed_probes == 6
    assert intervals == [0.5, 1.0, 1.0, 1.0, 1.0, 1.0]
    assert intervals[0] == PROBE_INTERVAL_MIN * 2
    assert max(intervals) == PROBE_INTERVAL_MAX
    # Failures of requests admitted before the outage change nothing.
    assert health.failed(ConnectionError(), 0) is False
    assert health.interval == PROBE_INTERVAL_MAX


def test_recovery_within_the_longest_interval_of_the_storage_returning(
    health: StorageHealth, clock: Clock, probe: Probe, events: Recorder
) -> None:
    started = clock.now
    health.failed(ConnectionError(), 0)
    for _ in range(20):  # a long outage: the interval is at its maximum
        clock.now = health.next_probe
        assert health.admit() is None
    returned = clock.now + 0.01  # just after a failed probe: the worst case
    probe.answer = True
    clock.now = returned
    while (epoch := health.admit()) is None:
        clock.now += 0.05  # requests keep arriving
    assert clock.now - returned <= PROBE_INTERVAL_MAX
    assert not health.down
    assert epoch == health.epoch == 2
    assert events.ups == [pytest.approx(clock.now - started)]
    assert health.retry_after() == 0.0
    assert (health.interval, health.failed_probes) == (0.0, 0)


def test_a_failure_from_before_the_recovery_is_stale(
    health: StorageHealth, clock: Clock, probe: Probe, events: Recorder
) -> None:
    slow = health.admit()  # a request that will time out...
    fast = health.admit()
    assert slow is not None
    assert fast is not None
    assert health.failed(ConnectionError(), fast)  # ... after this one failed,
    probe.answer = True
    clock.now = health.next_probe
    assert health.admit() is not None  # ... and the storage came back.
    assert health.failed(TimeoutError(), slow) is False
    assert not health.down
    assert len(events.downs) == 1
    # A failure admitted after the recovery begins a new outage.
    assert health.failed(ConnectionError(), health.epoch) is True
    assert health.interval == PROBE_INTERVAL_MIN


def test_one_probe_at_a_time_and_nobody_waits_for_it(clock: Clock, events: Recorder) -> None:
    entered, release = threading.Event(), threading.Event()
    calls: list[int] = []

    def slow_probe() -> bool:
        calls.append(1)
        entered.set()
        assert release.wait(30)
        return True

    health = StorageHealth(slow_probe, on_up=events.ups.append, clock=clock)
    health.failed(ConnectionError(), 0)
    clock.now = health.next_probe
    result: list[int | None] = []
    prober = threading.Thread(target=lambda: result.append(health.admit()))
    prober.start()
    assert entered.wait(30)
    # While the probe runs, others get the degraded path at once, and no second probe.
    assert [health.admit() for _ in range(5)] == [None] * 5
    release.set()
    prober.join()
    assert result == [health.epoch]
    assert calls == [1]
    assert health.admit() == health.epoch


def _unreachable() -> bool:
    raise OSError("no route to host")


@pytest.mark.parametrize("broken", [_unreachable, lambda: False], ids=["raises", "false"])
def test_a_failed_probe_keeps_the_storage_down(clock: Clock, broken: Callable[[], bool]) -> None:
    health = StorageHealth(broken, clock=clock)
    health.failed(ConnectionError(), 0)
    clock.now = health.next_probe
    assert health.admit() is None
    assert health.failed_probes == 1
    assert health.down

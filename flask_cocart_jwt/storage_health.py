"""The health of the rate-limit storage: one back-off state per storage.

When a count in the storage fails, the storage is *down* for the whole
process, not only for the request that failed: every other request counts as
``COCART_JWT_RATELIMIT_ON_STORAGE_ERROR`` says (fallback, reject or allow)
without trying the storage. An outage is one change of state however many
requests fail at once: failures of requests that were in flight when it
began, or that started before the storage came back, change nothing.

While the storage is down, the first request after each probe interval
*probes* it with a cheap health check (on Redis, one ``PING``); the other
requests never wait for the probe. The interval starts at
:data:`PROBE_INTERVAL_MIN` and doubles after each failed probe up to
:data:`PROBE_INTERVAL_MAX`: the back-off grows at most once per probe
interval, never once per failing request, and a storage that is back is
counted in again at most :data:`PROBE_INTERVAL_MAX` seconds (plus one probe)
after it returned, as long as requests arrive.

.. versionadded:: 0.2
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

#: Seconds from the failure that begins an outage to the first probe.
PROBE_INTERVAL_MIN = 0.25
#: The longest interval between two probes of a storage that is down.
PROBE_INTERVAL_MAX = 1.0


class StorageHealth:
    """Whether to count in one storage now, and when to probe it again.

    Thread-safe: any number of threads may ask and report at once; one probe
    runs at a time, and a thread that finds a probe running does not wait
    for it.

    :param probe: the health check: ``True`` when the storage answers. An
        exception counts as a failed probe.
    :param on_down: called (outside the lock) with the error that began an
        outage.
    :param on_up: called (outside the lock) with the length of the outage in
        seconds when a probe finds the storage back.
    :param clock: monotonic seconds; tests pass their own.
    """

    def __init__(
        self,
        probe: Callable[[], bool],
        *,
        on_down: Callable[[Exception], None] | None = None,
        on_up: Callable[[float], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.probe = probe
        self.on_down = on_down
        self.on_up = on_up
        self.clock = clock
        self._lock = threading.Lock()
        #: Held by the one thread that is probing.
        self._probing = threading.Lock()
        #: When the current outage began (``clock`` seconds); ``None`` while up.
        self.down_since: float | None = None
        #: The probe interval now: 0 while up, then doubling per failed probe.
        self.interval = 0.0
        #: When the next probe is due (``clock`` seconds).
        self.next_probe = 0.0
        #: Failed probes in the current outage.
        self.failed_probes = 0
        #: Incremented by every change of state: a failure reported with an
        #: older epoch than this belongs to a request that started before the
        #: change, and changes nothing.
        self.epoch = 0

    @property
    def down(self) -> bool:
        """Whether the storage is counted as down."""
        return self.down_since is not None

    def admit(self) -> int | None:
        """The epoch to count in the storage under, or ``None`` to leave it alone now.

        Up: the current epoch, with no lock and no clock read. Down: ``None``,
        except for the first caller after the probe interval, which probes
        the storage and gets the new epoch if it answered.
        """
        if self.down_since is None:
            return self.epoch
        if self.clock() < self.next_probe or not self._probing.acquire(blocking=False):
            return None
        try:
            return self._probe_now()
        finally:
            self._probing.release()

    def _probe_now(self) -> int | None:
        with self._lock:  # another thread may have probed since the check above
            if self.down_since is None:
                return self.epoch
            if self.clock() < self.next_probe:
                return None
        try:
            answered = bool(self.probe())
        except Exception:
            answered = False
        with self._lock:
            now = self.clock()
            if not answered:
                self.failed_probes += 1
                self.interval = min(PROBE_INTERVAL_MAX, self.interval * 2)
                self.next_probe = now + self.interval
                return None
            outage = now - (self.down_since or now)
            self.down_since = None
            self.interval = 0.0
            self.failed_probes = 0
            self.epoch += 1
            epoch = self.epoch
        if self.on_up is not None:
            self.on_up(outage)
        return epoch

    def failed(self, error: Exception, epoch: int) -> bool:
        """Report that a count admitted under ``epoch`` failed.

        :returns: whether this failure began an outage (``False`` when the
            storage is down already or the failure is older than the last
            change of state).
        """
        with self._lock:
            if epoch != self.epoch or self.down_since is not None:
                return False
            now = self.clock()
            self.down_since = now
            self.interval = PROBE_INTERVAL_MIN
            self.next_probe = now + PROBE_INTERVAL_MIN
            self.failed_probes = 0
            self.epoch += 1
        if self.on_down is not None:
            self.on_down(error)
        return True

    def retry_after(self) -> float:
        """Seconds until the next probe (0 while up or when one is due)."""
        if self.down_since is None:
            return 0.0
        return max(0.0, self.next_probe - self.clock())

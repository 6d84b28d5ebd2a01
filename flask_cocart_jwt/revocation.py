"""The in-process view of revoked sessions behind the access-token revocation check.

Looking a session up in the database on every request would cost a query per
request. Instead each worker process keeps the set of sessions revoked
recently enough to still have live access tokens (within the access-token
lifetime plus leeway), and a daemon thread refreshes it from the database
every :attr:`RevocationView.poll_interval` seconds. A revocation made in the
same process is visible at once; one made by another process or host is seen
within about one poll interval (the documented bound is 1 second).

If the database cannot be read for longer than :attr:`RevocationView.max_staleness`
seconds, protected views answer 503 ``service_unavailable`` rather than let a
revoked token through. Hosts' clocks must agree within a minute (the skew
margin added to the window); use NTP.

A forked worker (gunicorn ``--preload``) starts afresh: its locks are new and
its first protected request loads the view synchronously.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref

from .exceptions import ServiceUnavailable
from .store import Store

logger = logging.getLogger(__name__)


class RevocationView:
    """The revoked sessions one process knows of, kept fresh in the background.

    :param store: where revocations are recorded.
    :param relevance: seconds after its revocation that a session can still
        have unexpired access tokens (access lifetime + leeway + clock skew).
    """

    #: Seconds between two polls of the database.
    poll_interval: float = 0.5
    #: Seconds without a successful poll before requests are refused.
    max_staleness: float = 10.0

    def __init__(self, store: Store, relevance: int) -> None:
        _views.add(self)
        self._store = store
        self._relevance = relevance
        self._revoked: dict[str, int] = {}
        self._synced_at = 0.0
        self._pid = 0
        self._lock = threading.Lock()
        self._merge_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def is_revoked(self, session_id: str) -> bool:
        """Whether ``session_id`` is revoked, as far as this process knows.

        :raises ServiceUnavailable: the view could not be loaded, or is stale.
        """
        if self._pid != os.getpid():
            self._start()
        if time.monotonic() - self._synced_at > self.max_staleness:
            self._sync_or_fail()
        return session_id in self._revoked

    def add(self, session_ids: list[str], revoked_at: int) -> None:
        """Record revocations made by this process, effective at once."""
        with self._merge_lock:
            for session_id in session_ids:
                self._revoked[session_id] = revoked_at

    def close(self, timeout: float = 5.0) -> None:
        """Stop the background thread and wait for it (at most ``timeout`` seconds).

        Waiting lets a poll that is running finish and return its connection,
        so that the store's engine can then be disposed cleanly.
        """
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def sync(self) -> None:
        """Read every revocation that can still matter, and forget older ones.

        Each poll reads the whole window (revoked within the relevance
        period) rather than "since the last poll": a cursor would be moved by
        the clock of whichever host wrote the newest row, and one host with a
        fast clock would hide every other host's revocations.
        """
        horizon = int(time.time()) - self._relevance
        rows = self._store.revoked_since(horizon)
        with self._merge_lock:
            revoked = {sid: at for sid, at in self._revoked.items() if at >= horizon}
            revoked.update(rows)
            self._revoked = revoked
        self._synced_at = time.monotonic()

    def _sync_or_fail(self) -> None:
        try:
            self.sync()
        except ServiceUnavailable:
            raise
        except Exception as exc:  # pragma: no cover - defensive
            raise ServiceUnavailable from exc

    def _start(self) -> None:
        with self._lock:
            if self._pid == os.getpid():
                return
            # First use in this process (or after a fork): load synchronously,
            # then keep fresh in the background.
            self._revoked, self._synced_at = {}, 0.0
            self._sync_or_fail()
            self._stop = threading.Event()
            thread = threading.Thread(
                target=_poll,
                args=(weakref.ref(self), self._stop, self.poll_interval),
                name="cocart-jwt-revocations",
                daemon=True,
            )
            thread.start()
            self._thread = thread
            self._pid = os.getpid()


_views: weakref.WeakSet[RevocationView] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # A lock held by another thread at fork time stays held forever in the
    # child: give every view new locks, and make it load afresh.
    for view in list(_views):
        view._lock = threading.Lock()
        view._merge_lock = threading.Lock()
        view._pid = 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _poll(ref: weakref.ref[RevocationView], stop: threading.Event, interval: float) -> None:
    """Refresh a view until it is stopped or garbage-collected."""
    while not stop.wait(interval):
        view = ref()
        if view is None:
            return
        try:
            view.sync()
        except Exception:  # keep polling; staleness is enforced per request
            logger.warning("Could not refresh the revoked sessions", exc_info=True)
        del view

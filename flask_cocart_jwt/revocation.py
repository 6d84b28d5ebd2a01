"""The in-process view of revoked sessions behind the access-token revocation check.

Looking a session up in the database on every request would cost a query per
request. Instead each worker process keeps the set of revoked sessions that
may still have unexpired access tokens, and a daemon thread refreshes it from
the database every :attr:`RevocationView.poll_interval` seconds. A revoked
session is kept until the latest access token it issued has expired (plus
leeway and clock skew), as recorded in the database when it was revoked: the
access-token lifetime configured now does not matter, so lowering it cannot
bring a revoked session back. A revocation made in the
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
import threading
import time
import weakref

from .exceptions import ServiceUnavailable
from .forks import PerProcess
from .store import Store

logger = logging.getLogger(__name__)


class _Known:
    """What one process knows: the revoked sessions (each with the time until
    which it is kept), and when it last synced."""

    __slots__ = ("lock", "revoked", "stop", "synced_at")

    def __init__(self) -> None:
        self.revoked: dict[str, int] = {}
        self.synced_at = 0.0
        self.lock = threading.Lock()
        self.stop = threading.Event()


class RevocationView:
    """The revoked sessions one process knows of, kept fresh in the background.

    :param store: where revocations are recorded.
    :param access_lifetime: the access-token lifetime: how long a revocation
        made in this process is kept before the database's bound is read.
    :param margin: seconds a revoked session is kept after its latest access
        token expired (leeway + clock skew between hosts).
    """

    #: Seconds between two polls of the database.
    poll_interval: float = 0.5
    #: Seconds without a successful poll before requests are refused.
    max_staleness: float = 10.0

    def __init__(self, store: Store, access_lifetime: int, *, margin: int) -> None:
        self._store = store
        self._access_lifetime = access_lifetime
        self._margin = margin
        self._thread: threading.Thread | None = None
        # First use in each process (a forked worker included): load
        # synchronously, then keep fresh in the background.
        self._process = PerProcess(self._start, _stop_inherited)

    def is_revoked(self, session_id: str) -> bool:
        """Whether ``session_id`` is revoked, as far as this process knows.

        :raises ServiceUnavailable: the view could not be loaded, or is stale.
        """
        known = self._process.value or self._process.get()
        if time.monotonic() - known.synced_at > self.max_staleness:
            self._sync_or_fail(known)
        return session_id in known.revoked

    def add(self, session_ids: list[str], revoked_at: int) -> None:
        """Record revocations made by this process, effective at once.

        Before the view's first use in this process there is nothing to
        update: the first load reads these revocations from the database.
        Until the next poll reads how long each must be kept, it is kept for
        one access-token lifetime.
        """
        known = self._process.value
        if known is None:
            return
        until = revoked_at + self._access_lifetime
        with known.lock:
            for session_id in session_ids:
                known.revoked[session_id] = max(until, known.revoked.get(session_id, until))

    def close(self, timeout: float = 5.0) -> None:
        """Stop the background thread and wait for it (at most ``timeout`` seconds).

        Waiting lets a poll that is running finish and return its connection,
        so that the store's engine can then be disposed cleanly.
        """
        known = self._process.value
        if known is not None:
            known.stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def sync(self) -> None:
        """Read every revocation that can still matter, and forget older ones.

        Each poll reads every revoked session whose access tokens may be
        unexpired, rather than those revoked "since the last poll": a cursor
        would be moved by the clock of whichever host wrote the newest row,
        and one host with a fast clock would hide every other host's
        revocations.
        """
        self._sync(self._process.get())

    def _sync(self, known: _Known) -> None:
        horizon = int(time.time()) - self._margin
        rows = self._store.revoked_sessions(horizon)
        with known.lock:
            revoked = {sid: until for sid, until in known.revoked.items() if until >= horizon}
            for session_id, until in rows:
                revoked[session_id] = max(until, revoked.get(session_id, until))
            known.revoked = revoked
        known.synced_at = time.monotonic()

    def _sync_or_fail(self, known: _Known) -> None:
        try:
            self._sync(known)
        except ServiceUnavailable:
            raise
        except Exception as exc:  # pragma: no cover - defensive
            raise ServiceUnavailable from exc

    def _start(self) -> _Known:
        known = _Known()
        self._sync_or_fail(known)
        thread = threading.Thread(
            target=_poll,
            args=(weakref.ref(self), known, self.poll_interval),
            name="cocart-jwt-revocations",
            daemon=True,
        )
        thread.start()
        self._thread = thread
        return known


def _stop_inherited(known: _Known) -> None:
    # The parent's poller thread does not exist in a forked child; nothing
    # else of the parent's view is kept.
    known.stop.set()


def _poll(ref: weakref.ref[RevocationView], known: _Known, interval: float) -> None:
    """Refresh a view until it is stopped or garbage-collected."""
    while not known.stop.wait(interval):
        view = ref()
        if view is None:
            return
        try:
            view.sync()
        except Exception:  # keep polling; staleness is enforced per request
            logger.warning("Could not refresh the revoked sessions", exc_info=True)
        del view

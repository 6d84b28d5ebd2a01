"""The in-process view of revoked sessions behind the access-token revocation check.

Looking a session up in the database on every request would cost a query per
request. Instead each worker process keeps the set of revoked sessions that
may still have unexpired access tokens, and a daemon thread refreshes it from
the database every :attr:`RevocationView.poll_interval` seconds. A revoked
session is kept until the latest access token it issued has expired (plus
leeway and clock skew), as recorded in the database when it was revoked: the
access-token lifetime configured now does not matter, so lowering it cannot
bring a revoked session back. A revocation made in the same process is
visible at once. One made by another process or host is
pushed to this one where the deployment allows (PostgreSQL ``LISTEN/NOTIFY``
or Redis pub/sub, see :mod:`flask_cocart_jwt.push`): a second daemon thread
holds the subscription, and the revocation is known within milliseconds.
Without a push, or while its connection is down, it is seen within about one
poll interval (the documented bound is 1 second). After each (re)connection
the listener reads the whole window once, which heals the messages missed
while it was away; it reconnects on its own, with a growing back-off.

If neither the database nor a live push connection has confirmed the view
for :attr:`RevocationView.max_staleness` seconds, protected views answer 503
``service_unavailable`` rather than let a revoked token through. Hosts'
clocks must agree within a minute (the skew margin added to the window); use
NTP.

Requests never wait for the push: they read the in-memory view only. A
forked worker (gunicorn ``--preload``) starts afresh: its locks, threads and
connections are new, and its first protected request loads the view
synchronously.
"""

from __future__ import annotations

import contextlib
import logging
import random
import socket
import threading
import time
import weakref
from collections.abc import Callable

from .exceptions import ServiceUnavailable
from .forks import PerProcess
from .push import Push, Subscription, decode
from .store import Store

logger = logging.getLogger(__name__)
#: The reconnect jitter's own generator: a library leaves the global one, which
#: apps and tests seed, untouched (a listener thread reconnecting must not
#: change it under them).
_jitter = random.Random()  # noqa: S311 - jitter, not a secret


class _Known:
    """What one process knows: the revoked sessions (each with the time until
    which it is kept), and since when it is sure.

    ``synced_at`` is the last time (monotonic) the view was known complete:
    a poll of the database, or a round trip on a live push connection.
    """

    __slots__ = ("lock", "pushing", "revoked", "stop", "synced_at", "wake")

    def __init__(self) -> None:
        self.revoked: dict[str, int] = {}
        self.synced_at = 0.0
        #: Whether a push subscription is live and has healed the view.
        self.pushing = False
        self.lock = threading.Lock()
        self.stop = threading.Event()
        #: Written to by :meth:`RevocationView.close`, to wake the listener.
        self.wake: tuple[socket.socket, socket.socket] | None = None

    def record(self, session_ids: list[str], until: int) -> None:
        """Keep ``session_ids`` revoked until ``until`` at least."""
        with self.lock:
            for session_id in session_ids:
                self.revoked[session_id] = max(until, self.revoked.get(session_id, until))


class RevocationView:
    """The revoked sessions one process knows of, kept fresh in the background.

    :param store: where revocations are recorded.
    :param access_lifetime: the access-token lifetime: how long a revocation
        made in this process, or pushed to it, is kept before the database's
        bound is read.
    :param margin: seconds a revoked session is kept after its latest access
        token expired (leeway + clock skew between hosts).
    :param push: how revocations reach the other workers; ``None``: by
        polling only.
    """

    #: Seconds between two polls of the database.
    poll_interval: float = 0.5
    #: Seconds without a successful poll before requests are refused.
    max_staleness: float = 10.0
    #: Seconds between two round trips that prove the push connection alive.
    heartbeat: float = 2.0
    #: The longest wait between two attempts to reconnect the push (seconds).
    max_backoff: float = 5.0

    def __init__(
        self, store: Store, access_lifetime: int, *, margin: int, push: Push | None = None
    ) -> None:
        self._store = store
        self._access_lifetime = access_lifetime
        self._margin = margin
        self.push = push
        self._thread: threading.Thread | None = None
        self._listener: threading.Thread | None = None
        # First use in each process (a forked worker included): load
        # synchronously, then keep fresh in the background.
        self._process = PerProcess(self._start, _stop_inherited)

    @property
    def pushing(self) -> bool:
        """Whether this process receives revocations by push right now.

        ``False`` before the view's first use in the process, without a
        push, and while its connection is down (polling only).

        .. versionadded:: 0.2
        """
        known = self._process.value
        return known is not None and known.pushing

    def is_revoked(self, session_id: str) -> bool:
        """Whether ``session_id`` is revoked, as far as this process knows.

        :raises ServiceUnavailable: the view could not be loaded, or is stale.
        """
        known = self._process.value or self._process.get()
        if time.monotonic() - known.synced_at > self.max_staleness:
            self._sync_or_fail(known)
        return session_id in known.revoked

    def add(self, session_ids: list[str], revoked_at: int) -> None:
        """Record revocations made by this process (committed), effective at once.

        They are also pushed to the other workers where that takes a
        message after the commit (Redis). Before the view's first use in this
        process there is nothing to update here: the first load reads these
        revocations from the database. Until the next poll reads how long
        each must be kept, it is kept for one access-token lifetime.
        """
        if self.push is not None:
            self.push.publish(session_ids, revoked_at)
        known = self._process.value
        if known is not None:
            known.record(session_ids, revoked_at + self._access_lifetime)

    def close(self, timeout: float = 5.0) -> None:
        """Stop the background threads and wait for them (at most ``timeout`` seconds).

        Waiting lets a poll that is running finish and return its connection,
        so that the store's engine can then be disposed cleanly; the push
        connections are closed.
        """
        known = self._process.value
        if known is not None:
            known.stop.set()
            with known.lock, contextlib.suppress(OSError):
                if known.wake is not None:
                    known.wake[1].send(b"x")
        for thread in (self._thread, self._listener):
            if thread is not None and thread is not threading.current_thread():
                thread.join(timeout)
        if self.push is not None:
            self.push.close()

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
        if self.push is not None and self.push.way != "poll":
            known.wake = socket.socketpair()
            listener = threading.Thread(
                target=_listen,
                args=(weakref.ref(self), known, self.push, self._access_lifetime),
                name="cocart-jwt-revocation-push",
                daemon=True,
            )
            listener.start()
            self._listener = listener
        return known


def _stop_inherited(known: _Known) -> None:
    # The parent's threads do not exist in a forked child, and its push
    # connection belongs to the parent (never closed here); nothing of the
    # parent's view is kept.
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


def _listen(ref: weakref.ref[RevocationView], known: _Known, push: Push, lifetime: int) -> None:
    """Receive pushed revocations until the view is stopped or garbage-collected.

    On any failure: close, wait (0.1 s doubling up to
    :attr:`RevocationView.max_backoff`, with jitter; back to 0.1 s once a
    subscription has been live) and subscribe again. One warning when the
    push is lost, one when it is back.
    """
    assert known.wake is not None
    wake_read = known.wake[0]
    backoff = 0.1
    failing = False

    def live() -> None:
        nonlocal backoff, failing
        if failing:
            logger.warning("Revocation push: connected again")
        failing, backoff = False, 0.1

    try:
        while not known.stop.is_set():
            view = ref()
            if view is None:
                return
            heartbeat, max_backoff = view.heartbeat, view.max_backoff
            del view
            try:
                subscription = push.subscribe(known.stop, wake_read)
                try:
                    _receive(ref, known, subscription, heartbeat, lifetime, live)
                finally:
                    known.pushing = False
                    subscription.close()
            except Exception:
                if not failing and not known.stop.is_set():
                    logger.warning(
                        "Revocation push: no connection; polling until it is back", exc_info=True
                    )
                failing = True
            known.stop.wait(backoff * (0.5 + _jitter.random()))
            backoff = min(backoff * 2, max_backoff)
    finally:
        with known.lock:
            wake, known.wake = known.wake, None
        for end in wake or ():
            end.close()


def _receive(
    ref: weakref.ref[RevocationView],
    known: _Known,
    subscription: Subscription,
    heartbeat: float,
    lifetime: int,
    live: Callable[[], None],
) -> None:
    """Apply the messages of a live subscription until stopped (or it fails).

    Once subscribed, the view reads the whole window (what was revoked
    before the subscription was in place: the messages missed while
    disconnected); from then on, each round trip of the heartbeat proves it
    complete, which keeps it fresh without polling. If that read fails (the
    database is down), messages are still applied and the read is tried
    again at each heartbeat, but the view is not called fresh until it
    succeeds. A pushed revocation is kept for one access-token lifetime
    (``lifetime``) until a poll reads the database's bound. ``live`` is
    called once the subscription is live and the view healed.
    """
    healed = False
    next_check = 0.0
    while not known.stop.is_set():
        now = time.monotonic()
        if now >= next_check:
            subscription.check()
            if not healed:
                view = ref()
                if view is None:
                    return
                healed = _heal(view)
                del view
                if healed:
                    live()
            if healed:
                known.synced_at = max(known.synced_at, now)
                known.pushing = True
            next_check = now + heartbeat
        for message in subscription.wait(next_check - time.monotonic()):
            decoded = decode(message)
            if decoded is None:
                logger.warning("Revocation push: a malformed message was ignored")
                continue
            session_ids, revoked_at = decoded
            known.record(session_ids, revoked_at + lifetime)


def _heal(view: RevocationView) -> bool:
    """Read the whole window once; whether that worked."""
    try:
        view.sync()
    except Exception:
        logger.warning("Revocation push: cannot read the revoked sessions", exc_info=True)
        return False
    return True

"""Deadlines on the connections of the extension's own engine.

A database that stops answering (a paused VM, ``SIGSTOP``, a network device
that keeps the TCP connection open but forwards nothing) is not caught by a
server-side statement timeout: the server never sees the statement, or its
answer never arrives. PyMySQL and pg8000 have client-side socket timeouts for
that; libpq (psycopg, psycopg2) has none. So each checkout of a connection
from the pool gets a deadline (the database timeout), and for libpq drivers a
watchdog thread shuts the connection's socket down when a checkout outlives
it: the driver then raises a "connection lost" error, which answers 503.

Checkouts also ping the connection (``SELECT 1``) before it is used, as
SQLAlchemy's ``pool_pre_ping`` does, but under the deadline (SQLAlchemy pings
before any pool event, where no deadline could cover it). A connection that
fails its ping quickly is dead (the server restarted): the pool is invalidated
and a new connection is made, with no error. One that fails it at the deadline
belongs to a database that does not answer: the request gets its 503 at once
rather than wait for a new connection as well.

No ping is needed for a connection just made, nor for one checked in less
than :data:`RECENT` seconds ago whose socket has nothing to read: a server
that restarted or closed the connection since has sent it an error or its
end, which makes the socket readable, and such a connection is pinged. A
ping costs a round trip, about as much as a statement of a refresh. A
connection that died unannounced within that second (a network cut, a host
that vanished) fails its first statement instead: that request answers 503,
and SQLAlchemy's disconnect handling replaces the pool's connections. For a
driver whose connection shows no socket (``fileno()``; PyMySQL), every
checkout but the first is pinged.
"""

from __future__ import annotations

import os
import select
import socket
import threading
import time
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy import exc as sa_exc

#: ``ConnectionPoolEntry.info`` key: made since its last checkout, no ping needed.
_FRESH = "cocart_jwt_fresh"
#: ``ConnectionPoolEntry.info`` key: ``time.monotonic()`` of its last checkin.
_CHECKED_IN = "cocart_jwt_checked_in"
#: Seconds after its checkin that a connection with a quiet socket is not pinged.
RECENT = 1.0
#: Seconds the watchdog thread lingers without deadlines before it exits.
_IDLE = 30.0


class Deadlines:
    """The checkout deadlines of one engine's connections.

    :param timeout: seconds a checkout may last, from the pool to the pool.
    :param cut_sockets: shut down the socket of a connection past its
        deadline (for drivers without a client-side socket timeout).
    """

    def __init__(self, timeout: float, *, cut_sockets: bool) -> None:
        self.timeout = timeout
        self.cut_sockets = cut_sockets
        self._lock = threading.Lock()
        self._due: dict[int, tuple[float, Any]] = {}
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        #: When the watchdog looks at the deadlines next (``time.monotonic()``).
        self._next_look = 0.0

    def arm(self, dbapi_connection: Any) -> float:
        """Start the deadline of a checkout; return it (``time.monotonic()``)."""
        deadline = time.monotonic() + self.timeout
        if self.cut_sockets:
            with self._lock:
                self._due[id(dbapi_connection)] = (deadline, dbapi_connection)
                if self._thread is None or not self._thread.is_alive():
                    # Lives while deadlines are pending, then _IDLE seconds more.
                    self._thread = threading.Thread(
                        target=self._watch, name="cocart-jwt-db-deadlines", daemon=True
                    )
                    self._thread.start()
                elif deadline < self._next_look:
                    # Never while deadlines share one timeout: a watchdog
                    # thread woken on every checkout costs more than the ping.
                    self._wake.set()
        return deadline

    def disarm(self, dbapi_connection: Any) -> None:
        """The checkout ended (or the connection is gone): forget its deadline."""
        if self.cut_sockets and dbapi_connection is not None:
            with self._lock:
                self._due.pop(id(dbapi_connection), None)

    def expire(self) -> float | None:
        """Cut the connections past their deadline; return the next deadline.

        ``None`` when no deadline is left. Called by the watchdog thread, which
        looks again at the next deadline or, with none left, one timeout from
        now: no deadline armed meanwhile can be due before then.
        """
        with self._lock:  # a checkin waits: its socket is never cut after it
            now = time.monotonic()
            for key, (deadline, connection) in list(self._due.items()):
                if deadline <= now:
                    del self._due[key]
                    _shut_down(connection)
            upcoming = min((deadline for deadline, _ in self._due.values()), default=None)
            self._next_look = now + self.timeout if upcoming is None else upcoming
            return upcoming

    def _watch(self) -> None:
        """The watchdog thread: cut connections at their deadline, until idle."""
        idle_since: float | None = None
        while True:
            self._wake.clear()
            if self.expire() is not None:
                idle_since = None
            elif idle_since is None:
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since >= _IDLE:
                with self._lock:
                    if not self._due:
                        self._thread = None
                        return
            self._wake.wait(max(0.0, self._next_look - time.monotonic()))

    def install(self, engine: Engine) -> None:
        """Arm a deadline and ping on each checkout of ``engine``'s pool."""
        dialect = engine.dialect

        def connect(_dbapi_connection: Any, record: Any) -> None:
            record.info[_FRESH] = True

        def checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
            deadline = self.arm(dbapi_connection)
            if record.info.pop(_FRESH, False) or _recently_used(record.info, dbapi_connection):
                return
            try:
                dialect.do_ping(dbapi_connection)
            except dialect.loaded_dbapi.Error:
                self.disarm(dbapi_connection)
                if time.monotonic() >= deadline:
                    raise  # the database does not answer: 503 now
                raise sa_exc.InvalidatePoolError from None  # dead: reconnect

        def checkin(dbapi_connection: Any, record: Any) -> None:
            self.disarm(dbapi_connection)
            record.info[_CHECKED_IN] = time.monotonic()

        def ended(dbapi_connection: Any, *_args: Any) -> None:
            self.disarm(dbapi_connection)

        event.listen(engine, "connect", connect)
        event.listen(engine, "checkout", checkout)
        event.listen(engine, "checkin", checkin)
        for name in ("invalidate", "soft_invalidate", "close", "detach"):
            event.listen(engine, name, ended)
        event.listen(engine, "close_detached", ended)


def _recently_used(info: dict[Any, Any], connection: Any) -> bool:
    """Whether a connection was checked in less than :data:`RECENT` seconds
    ago and its socket is quiet since: it needs no ping."""
    checked_in = info.get(_CHECKED_IN)
    return checked_in is not None and time.monotonic() - checked_in < RECENT and _quiet(connection)


def _quiet(connection: Any) -> bool:
    """Whether a DBAPI connection's socket has nothing to read (nor is at its end).

    A pooled connection between transactions is sent nothing: anything
    readable is an error, a notice or the end of the connection from the
    server. ``False`` when the driver shows no socket (it cannot be told).
    """
    try:
        fd = connection.fileno()
    except Exception:  # no socket, or already closed
        return False
    try:
        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(fd, select.POLLIN | select.POLLPRI)
            return not poller.poll(0)
        return not select.select([fd], [], [], 0)[0]
    except (OSError, ValueError):
        return False


def _shut_down(connection: Any) -> None:
    """Shut down a DBAPI connection's socket, so that a blocked read returns.

    The socket is reached through a duplicate of its descriptor, which the
    driver keeps owning; shutting it down makes the driver see a lost
    connection. The connection is checked out (its deadline is armed), so
    the pool cannot close it meanwhile; a driver that has dropped the socket
    itself after an error answers ``fileno()`` with an error, and nothing is
    cut.
    """
    try:
        fd = connection.fileno()
        sock = socket.socket(fileno=os.dup(fd))
    except Exception:  # already closed, or no socket: nothing to cut
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        sock.close()

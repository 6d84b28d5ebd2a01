"""A small TCP proxy that can cut, restore and freeze database connections.

The app connects to the proxy instead of the database (:func:`through`).
:meth:`TcpProxy.cut` closes every connection it carries and stops listening,
so that new connections are refused at once; :meth:`TcpProxy.restore` listens
again on the same port. :meth:`TcpProxy.freeze` keeps every connection open
and accepts new ones but forwards nothing, as a paused database server does
(its kernel still acknowledges what is sent); :meth:`TcpProxy.thaw` resumes.
All threads are bounded by short socket timeouts and stop with
:meth:`TcpProxy.close`.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
from types import TracebackType
from urllib.parse import urlsplit, urlunsplit

_POLL = 0.1


class TcpProxy:
    """Forward ``127.0.0.1:<port>`` to ``(upstream_host, upstream_port)``."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._threads: list[threading.Thread] = []
        self._closed = threading.Event()
        self._flowing = threading.Event()
        self._flowing.set()
        self._listening = threading.Event()
        self._listener: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None
        self.port = 0
        self.connections = 0
        self._listen()

    # -- control -----------------------------------------------------------------

    def cut(self) -> None:
        """Close every carried connection and refuse new ones."""
        self._stop_listening()
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            _close_pair(pair)
        self._join()

    def freeze(self) -> None:
        """Forward nothing, in either direction, until :meth:`thaw`."""
        self._flowing.clear()

    def thaw(self) -> None:
        """Forward again what waited, and what comes."""
        self._flowing.set()

    def restore(self) -> None:
        """Accept connections again, on the same port."""
        if not self._listening.is_set():
            self._listen()

    def close(self) -> None:
        """Cut everything and stop all threads."""
        self._closed.set()
        self.cut()

    def url(self, upstream_url: str) -> str:
        """``upstream_url`` (a database URL) with its host and port replaced by the proxy's."""
        parts = urlsplit(upstream_url)
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = (userinfo + "@" if userinfo else "") + f"127.0.0.1:{self.port}"
        return urlunsplit(parts._replace(netloc=netloc))

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- internals ----------------------------------------------------------------

    def _listen(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind(("127.0.0.1", self.port))
            listener.listen(64)
        except OSError:
            listener.close()
            raise
        listener.settimeout(_POLL)
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._listening.set()
        self._accept_thread = threading.Thread(
            target=self._accept, args=(listener,), name="proxy-accept", daemon=True
        )
        self._accept_thread.start()

    def _stop_listening(self) -> None:
        self._listening.clear()
        if self._accept_thread is not None:
            self._accept_thread.join(timeout=5)
            self._accept_thread = None
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    def _accept(self, listener: socket.socket) -> None:
        while self._listening.is_set() and not self._closed.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            pair = (client, upstream)
            thread = threading.Thread(target=self._pump, args=(pair,), daemon=True)
            with self._lock:
                if not self._listening.is_set():
                    _close_pair(pair)
                    return
                self._pairs.append(pair)
                self._threads.append(thread)
                self.connections += 1
            thread.start()

    def _pump(self, pair: tuple[socket.socket, socket.socket]) -> None:
        client, upstream = pair
        peer = {client: upstream, upstream: client}
        try:
            while not self._closed.is_set():
                if client.fileno() < 0 or upstream.fileno() < 0:
                    return
                if not self._flowing.wait(_POLL):
                    continue  # frozen: the data waits in the kernel's buffers
                readable, _, _ = select.select([client, upstream], [], [], _POLL)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    peer[sock].sendall(data)
        except (OSError, ValueError):
            return  # cut: the sockets were closed under us
        finally:
            with self._lock:
                if pair in self._pairs:
                    self._pairs.remove(pair)
            _close_pair(pair)

    def _join(self) -> None:
        with self._lock:
            threads, self._threads = self._threads, []
        for thread in threads:
            thread.join(timeout=5)
        with self._lock:
            self._threads.extend(t for t in threads if t.is_alive())


def through(url: str, port: int) -> str:
    """``url`` with its host and port replaced by those of a proxy on ``port``."""
    parts = urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = (userinfo + "@" if userinfo else "") + f"127.0.0.1:{port}"
    return urlunsplit(parts._replace(netloc=netloc))


def _close_pair(pair: tuple[socket.socket, socket.socket]) -> None:
    for sock in pair:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()

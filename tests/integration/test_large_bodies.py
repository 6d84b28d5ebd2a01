"""Huge chunked bodies to the token routes through a real gunicorn server.

A ``Transfer-Encoding: chunked`` request has no ``Content-Length`` to refuse it
by. Each route that reads a body gets a generated, unauthenticated 128 MB
chunked body over a raw socket, answers the contract's JSON 400
``invalid_request`` (too large) before the client is done sending, and its
worker's peak memory (``VmHWM`` in ``/proc/<pid>/status``) stays flat: the
body is never held in memory (before the fix it grew by the body's size).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import select
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.integration import servers as srv

pytestmark = [pytest.mark.integration, pytest.mark.needs_server]

BODY_BYTES = 128 * 1024 * 1024
CHUNK = b"a" * (1024 * 1024)
#: How much a worker's peak memory may grow over the three requests.
MAX_GROWTH_KB = 30 * 1024
ROUTES = ("/auth/login", "/auth/refresh-token", "/auth/revoke")


def peak_rss_kb(pid: int) -> int:
    """The peak resident memory of process ``pid`` (``VmHWM``), in kB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmHWM for {pid}")


def post_chunked(port: int, path: str, total: int) -> tuple[int, dict[str, Any], int]:
    """POST ``total`` bytes as 1 MB chunks; stop sending once the answer arrives.

    :returns: the status, the JSON body and how many bytes were sent.
    """
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    with contextlib.closing(sock):
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        framed = b"%x\r\n%s\r\n" % (len(CHUNK), CHUNK)
        sent = 0
        # The server answers and closes after reading the cap: sending then
        # fails or the answer is readable.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            while sent < total and not select.select([sock], [], [], 0)[0]:
                sock.sendall(framed)
                sent += len(CHUNK)
            if sent >= total:
                sock.sendall(b"0\r\n\r\n")
        response = http.client.HTTPResponse(sock, method="POST")
        response.begin()
        body = json.loads(response.read())
        return response.status, body, sent


def test_chunked_bodies_are_refused_without_being_read(
    postgresql_url: str, redis_url: str, start_servers: Callable[..., list[srv.Server]]
) -> None:
    (server,) = start_servers(postgresql_url, redis_url, names=("a",), workers=1)
    (worker,) = server.worker_pids()
    # Warm up the same code paths with small chunked bodies first.
    for path in ROUTES:
        status, body, _sent = post_chunked(server.port, path, len(CHUNK))
        assert (status, body["error"]) == (400, "invalid_request"), body
    before = peak_rss_kb(worker)
    for path in ROUTES:
        status, body, sent = post_chunked(server.port, path, BODY_BYTES)
        assert (status, body) == (
            400,
            {"error": "invalid_request", "message": "The request body is too large."},
        ), (path, sent)
        # Answered (and closed) long before the body ended.
        assert sent < BODY_BYTES, path
    assert server.worker_pids() == {worker}
    growth = peak_rss_kb(worker) - before
    assert growth < MAX_GROWTH_KB, f"the worker's peak memory grew by {growth} kB"

"""The rate-limit storage goes away and comes back while the servers run.

A private ``redis-server`` on a free port is stopped mid-run and restarted on
the same port. One gunicorn server (two workers) per
``COCART_JWT_RATELIMIT_ON_STORAGE_ERROR`` mode runs against it, each counting
in a Redis database of its own so that its recovery can be seen in Redis:

- ``reject``: limited routes answer 503 ``service_unavailable`` with
  ``Retry-After`` while Redis is down;
- ``fallback`` and ``allow``: they are served;
- all: back to counting in Redis after the restart, without restarting the app.

A threaded server in ``reject`` mode is put through outages with many
requests failing at once (Redis stopped, then frozen with ``SIGSTOP`` so that
every request in flight times out together): the back-off is one state per
storage, so limited routes answer normally again about a second after Redis
is back, however many requests failed.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import pytest

from tests.integration import servers as srv

pytestmark = [pytest.mark.integration, pytest.mark.needs_server]

MODES = ("reject", "fallback", "allow")
#: Cheap limited probes: validate-token hits the per-IP and per-token limits
#: and reads nothing from the database.
PROBE_LIMITS = {
    "COCART_JWT_LIMIT_VALIDATE_PER_IP": "100000 per minute",
    "COCART_JWT_LIMIT_VALIDATE_PER_TOKEN": "100000 per minute",
    "COCART_JWT_LIMIT_LOGIN_PER_IP": "1000 per minute",
    "COCART_JWT_LIMIT_REFRESH_PER_IP": "1000 per minute",
}


class PrivateRedis:
    """A ``redis-server`` of the test's own, without persistence."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = srv.free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, db: int) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self, timeout: float = 10.0) -> None:
        binary = shutil.which("redis-server")
        assert binary is not None
        self.process = subprocess.Popen(  # noqa: S603 - fixed command line
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "redis-server exited"
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock,
            ):
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return
            time.sleep(0.05)
        raise TimeoutError("redis-server did not start")

    def freeze(self) -> None:
        """``SIGSTOP``: connections are accepted by the kernel, never answered."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        """``SIGCONT``: answer again."""
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process is not None:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGCONT)  # a frozen server cannot exit
                self.process.terminate()
                try:
                    self.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(timeout=10)
            self.process = None


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    redis = PrivateRedis(tmp_path)
    redis.start()
    try:
        yield redis
    finally:
        redis.stop()


def validate(port: int, access_token: str) -> srv.Reply:
    return srv.call(port, "POST", "/auth/validate-token", token=access_token, timeout=10)


def burst(fn: Callable[[], srv.Reply], n: int = 4) -> list[srv.Reply]:
    return srv.concurrently([fn] * n)


def assert_unavailable(replies: list[srv.Reply]) -> None:
    for reply in replies:
        assert (reply.status, reply.code) == (503, "service_unavailable"), reply.describe()
        assert int(reply.headers["retry-after"]) >= 1


def wait_recovered(
    server: srv.Server, access_token: str, redis: PrivateRedis, db: int, timeout: float = 40.0
) -> float:
    """Poll until both workers serve and the server counts in Redis again."""
    started = time.monotonic()
    deadline = started + timeout
    served: set[int] = set()
    while time.monotonic() < deadline:
        replies = burst(partial(validate, server.port, access_token))
        assert all(r.status in (200, 503) for r in replies), [r.describe() for r in replies]
        served |= {r.pid for r in replies if r.status == 200 and r.pid is not None}
        if served >= server.worker_pids() and srv.redis_keys(redis.url(db)):
            return time.monotonic() - started
        time.sleep(0.2)
    raise AssertionError(f"{server.name} did not recover in {timeout} s (served by {served})")


def test_redis_stopped_and_restarted(
    postgresql_url: str,
    private_redis: PrivateRedis,
    start_servers: Callable[..., list[srv.Server]],
) -> None:
    servers = start_servers(
        postgresql_url,
        None,
        names=MODES,
        per_server={
            mode: {
                "COCART_JWT_RATELIMIT_STORAGE_URI": private_redis.url(db),
                "COCART_JWT_RATELIMIT_ON_STORAGE_ERROR": mode,
            }
            for db, mode in enumerate(MODES)
        },
        **PROBE_LIMITS,
    )
    by_mode = dict(zip(MODES, servers, strict=True))
    tokens = {}
    for db, (mode, server) in enumerate(by_mode.items()):
        reply = srv.login(server.port)
        assert reply.status == 200, reply.describe()
        tokens[mode] = reply.body
        replies = burst(partial(validate, server.port, reply.body["access_token"]))
        assert {r.status for r in replies} == {200}, [r.describe() for r in replies]
        assert srv.redis_keys(private_redis.url(db)), f"{mode} does not count in Redis"

    private_redis.stop()

    reject, token = by_mode["reject"], tokens["reject"]
    assert_unavailable(burst(partial(validate, reject.port, token["access_token"])))
    assert_unavailable(burst(partial(srv.login, reject.port)))
    assert_unavailable([srv.refresh(reject.port, token["refresh_token"])])
    # Routes without limits do not need the storage.
    assert srv.call(reject.port, "GET", "/cart", token=token["access_token"]).status == 200
    for mode in ("fallback", "allow"):
        server = by_mode[mode]
        replies = burst(partial(validate, server.port, tokens[mode]["access_token"]))
        replies += [srv.login(server.port), srv.refresh(server.port, tokens[mode]["refresh_token"])]
        assert {r.status for r in replies} == {200}, (mode, [r.describe() for r in replies])
        tokens[mode] = replies[-1].body

    private_redis.start()

    recovery = {
        mode: wait_recovered(by_mode[mode], tokens[mode]["access_token"], private_redis, db)
        for db, mode in enumerate(MODES)
    }
    print(
        "\nrate-limit storage recovery after the restart (s): "
        + ", ".join(f"{mode} {seconds:.1f}" for mode, seconds in recovery.items())
    )
    assert srv.login(reject.port).status == 200
    refreshed = srv.refresh(reject.port, token["refresh_token"])
    assert refreshed.status == 200, refreshed.describe()


def wait_served(
    server: srv.Server, access_token: str, redis: PrivateRedis, timeout: float
) -> float:
    """Poll until a whole burst is served by every worker, counted in Redis.

    The deadline is generous (the bound is about one second): it only has to
    tell a recovery at the next health check from a back-off that outlives
    the outage by up to 30 s.
    """
    started = time.monotonic()
    served: set[int] = set()
    while time.monotonic() - started < timeout:
        replies = burst(partial(validate, server.port, access_token), n=8)
        assert all(r.status in (200, 503) for r in replies), [r.describe() for r in replies]
        served |= {r.pid for r in replies if r.status == 200 and r.pid is not None}
        if (
            {r.status for r in replies} == {200}
            and served >= server.worker_pids()
            and srv.redis_keys(redis.url(0))
        ):
            return time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(f"still refusing {timeout} s after Redis came back (served by {served})")


def test_reject_mode_recovers_after_many_concurrent_failures(
    postgresql_url: str,
    private_redis: PrivateRedis,
    start_servers: Callable[..., list[srv.Server]],
) -> None:
    (server,) = start_servers(
        postgresql_url,
        None,
        names=("reject-threads",),
        environ={"GUNICORN_CMD_ARGS": "--threads 8"},
        COCART_JWT_RATELIMIT_STORAGE_URI=private_redis.url(0),
        COCART_JWT_RATELIMIT_ON_STORAGE_ERROR="reject",
        **PROBE_LIMITS,
    )
    reply = srv.login(server.port)
    assert reply.status == 200, reply.describe()
    token = reply.body["access_token"]
    outages = {
        "stopped": (private_redis.stop, private_redis.start),
        "frozen": (private_redis.freeze, private_redis.thaw),
    }
    recovery = {}
    for name, (cut, restore) in outages.items():
        assert {r.status for r in burst(partial(validate, server.port, token), n=8)} == {200}
        cut()
        for _ in range(3):  # two workers x eight threads, all failing at once
            assert_unavailable(burst(partial(validate, server.port, token), n=32))
        restore()
        recovery[name] = wait_served(server, token, private_redis, timeout=10.0)
        assert srv.login(server.port).status == 200
    print(
        "\nreject mode, served again after Redis came back (s): "
        + ", ".join(f"{name} {seconds:.1f}" for name, seconds in recovery.items())
    )

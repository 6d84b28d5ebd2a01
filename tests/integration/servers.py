"""Run the example shop under gunicorn and talk to it over real HTTP.

Shared by the integration tests and ``benchmarks/soak.py``: several
independent gunicorn servers (each with its own master and workers, no
``--preload``) share one database and one Redis, configured through
``FLASK_*`` environment variables exactly as a deployment would. Clients use
the standard library only (:mod:`http.client`), one connection per request,
so that the kernel spreads requests over the workers.

Everything is bounded: readiness polls give up after a timeout, every request
has a socket timeout, and servers are always terminated (then killed).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit, urlunsplit

import sqlalchemy as sa

REPO = Path(__file__).resolve().parents[2]
GUNICORN = Path(sys.executable).with_name("gunicorn")
#: The app spec gunicorn loads in every worker (the shop, tagged by pid).
APP_SPEC = "tests.integration.wsgi:create_app()"
SECRET = "integration-secret-0123456789-abcdefghijklmnopqrstuvwxyz"
DEMO = {"username": "demo", "password": "demo-password"}
#: The Redis database number the integration servers count in (flushed first);
#: ``COCART_JWT_TEST_INTEGRATION_REDIS_DB`` moves it, so that two runs can share a Redis.
REDIS_DB = int(os.environ.get("COCART_JWT_TEST_INTEGRATION_REDIS_DB", "5"))
TOKEN_TABLES = ("cocart_jwt_sessions", "cocart_jwt_refresh_tokens")


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# -- database and Redis ----------------------------------------------------------


def dedicated_database(base_url: str, name: str) -> str:
    """The URL of database ``name`` on the server of ``base_url``, created if missing.

    A database of their own keeps the servers away from the unit tests, which
    drop and create the token tables of the default database. If it cannot be
    created (no privilege), ``base_url`` itself is used.
    """
    parts = urlsplit(base_url)
    url = urlunsplit(parts._replace(path="/" + name))
    engine = sa.create_engine(base_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "postgresql":
                exists = conn.execute(
                    sa.text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
                ).first()
                if exists is None:
                    conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
            else:
                conn.execute(sa.text(f"CREATE DATABASE IF NOT EXISTS `{name}`"))
    except sa.exc.DBAPIError:
        return base_url
    finally:
        engine.dispose()
    return url


def drop_database(base_url: str, name: str) -> None:
    """Drop database ``name`` (created by :func:`dedicated_database`), if it exists."""
    engine = sa.create_engine(base_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "postgresql":
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            else:
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))
    finally:
        engine.dispose()


def empty_database(url: str) -> None:
    """Drop every table of the database at ``url``: a fresh deployment's database."""
    engine = sa.create_engine(url)
    try:
        metadata = sa.MetaData()
        metadata.reflect(engine)
        metadata.drop_all(engine)
    finally:
        engine.dispose()


def init_database(url: str) -> None:
    """Run the shop's init step, ``flask init-db``, once: its tables, the token
    tables and the demo user.

    Done in the calling process, before any worker starts, as a deployment
    runs it once before serving (``create_app()`` never touches the database).
    """
    from examples.shop import create_app, db

    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": url,
            "COCART_JWT_SECRET_KEY": SECRET,
            "COCART_JWT_RATELIMIT_ENABLED": False,
        }
    )
    try:
        result = app.test_cli_runner().invoke(args=["init-db"])
        if result.exit_code != 0:
            raise RuntimeError(f"init-db failed: {result.output}") from result.exception
    finally:
        with app.app_context():
            db.engine.dispose()


def reset_database(url: str) -> None:
    """Drop every table, then run the init step (:func:`init_database`)."""
    empty_database(url)
    init_database(url)


def redis_db_url(base_url: str, db: int = REDIS_DB) -> str:
    """``base_url`` with its database number replaced by ``db``."""
    return urlunsplit(urlsplit(base_url)._replace(path=f"/{db}"))


def flush_redis(url: str) -> None:
    """Empty the Redis database of ``url``."""
    import redis

    with redis.Redis.from_url(url, socket_timeout=5) as client:
        client.flushdb()


def redis_keys(url: str) -> list[str]:
    """The keys in the Redis database of ``url``."""
    import redis

    with redis.Redis.from_url(url, socket_timeout=5, decode_responses=True) as client:
        return [str(key) for key in client.keys("*")]


@dataclass(frozen=True)
class TokenStats:
    """What the token tables say, for invariant checks."""

    sessions: int
    revoked_sessions: int
    #: Sessions with more than one unconsumed refresh token (must be empty).
    forked_sessions: list[str]
    #: Live sessions without an unconsumed refresh token (a lost session).
    sessions_without_live_token: list[str]
    #: Tokens consumed or issued after their session's revocation (strictly
    #: later, in whole seconds).
    used_after_revocation: int
    issued_after_revocation: int


def token_stats(url: str) -> TokenStats:
    """Read the invariants of the token tables of the database at ``url``."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            sessions = {
                r.id: r.revoked_at
                for r in conn.execute(sa.text("SELECT id, revoked_at FROM cocart_jwt_sessions"))
            }
            live: dict[str, int] = {}
            used_after = issued_after = 0
            for row in conn.execute(
                sa.text("SELECT session_id, created_at, used_at FROM cocart_jwt_refresh_tokens")
            ):
                revoked_at = sessions.get(row.session_id)
                if row.used_at is None:
                    live[row.session_id] = live.get(row.session_id, 0) + 1
                if revoked_at is not None:
                    used_after += row.used_at is not None and row.used_at > revoked_at
                    issued_after += row.created_at > revoked_at
    finally:
        engine.dispose()
    return TokenStats(
        sessions=len(sessions),
        revoked_sessions=sum(at is not None for at in sessions.values()),
        forked_sessions=sorted(sid for sid, n in live.items() if n > 1),
        sessions_without_live_token=sorted(
            sid for sid, at in sessions.items() if at is None and sid not in live
        ),
        used_after_revocation=used_after,
        issued_after_revocation=issued_after,
    )


def live_tokens(url: str, session_id: str) -> int:
    """The number of unconsumed refresh tokens of one session."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    sa.text(
                        "SELECT COUNT(*) FROM cocart_jwt_refresh_tokens "
                        "WHERE session_id = :sid AND used_at IS NULL"
                    ),
                    {"sid": session_id},
                ).scalar_one()
            )
    finally:
        engine.dispose()


# -- HTTP -------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """One HTTP exchange; ``status`` is 0 when the connection failed."""

    status: int
    headers: Mapping[str, str]
    body: Any
    started: float
    elapsed: float
    error: str | None = None

    @property
    def code(self) -> str:
        """The error code of a JSON error body, ``""`` otherwise."""
        if isinstance(self.body, dict):
            return str(self.body.get("error", ""))
        return ""

    @property
    def pid(self) -> int | None:
        """The gunicorn worker that answered."""
        value = self.headers.get("x-worker-pid")
        return int(value) if value else None

    def describe(self) -> str:
        """A short description for assertion messages."""
        if self.status == 0:
            return f"connection failed: {self.error}"
        return f"{self.status} {self.code or ''} pid={self.pid}".strip()


def call(
    port: int,
    method: str,
    path: str,
    *,
    body: Any = None,
    token: str | None = None,
    timeout: float = 15.0,
    extra_headers: Mapping[str, str] | None = None,
) -> Reply:
    """Send one request on a connection of its own and read the JSON answer.

    :param extra_headers: more request headers, e.g. ``X-Forwarded-For``.
    """
    headers = {"Connection": "close", **(extra_headers or {})}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    started = time.monotonic()
    try:
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
        raw = response.read()
        status = response.status
        reply_headers = {k.lower(): v for k, v in response.getheaders()}
    except (OSError, http.client.HTTPException) as exc:
        return Reply(0, {}, None, started, time.monotonic() - started, repr(exc))
    finally:
        conn.close()
    elapsed = time.monotonic() - started
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = raw[:300].decode("utf-8", "replace")
    return Reply(status, reply_headers, parsed, started, elapsed)


def login(port: int) -> Reply:
    """``POST /auth/login`` as the demo user."""
    return call(port, "POST", "/auth/login", body=DEMO)


def refresh(port: int, refresh_token: str) -> Reply:
    """``POST /auth/refresh-token``."""
    return call(port, "POST", "/auth/refresh-token", body={"refresh_token": refresh_token})


def concurrently(calls: Sequence[Callable[[], Reply]], *, timeout: float = 60.0) -> list[Reply]:
    """Run each call in a thread of its own, released together by a barrier."""
    barrier = threading.Barrier(len(calls))
    results: list[Reply | None] = [None] * len(calls)
    errors: list[BaseException] = []

    def run(index: int, fn: Callable[[], Reply]) -> None:
        try:
            barrier.wait(timeout=timeout)
            results[index] = fn()
        except BaseException as exc:  # reported in the calling thread
            errors.append(exc)

    threads = [
        threading.Thread(target=run, args=(i, fn), daemon=True) for i, fn in enumerate(calls)
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    if any(thread.is_alive() for thread in threads):
        raise TimeoutError(f"concurrent calls still running after {timeout} s")
    if errors:
        raise errors[0]
    return [r for r in results if r is not None]


# -- gunicorn ---------------------------------------------------------------------


def server_env(
    database_url: str, redis_url: str | None, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment of a server: this process's, minus ``FLASK_*``, plus settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLASK_", "COCART_JWT_"))}
    env.update(
        FLASK_SQLALCHEMY_DATABASE_URI=database_url,
        FLASK_SQLALCHEMY_ENGINE_OPTIONS=json.dumps({"pool_pre_ping": True}),
        FLASK_COCART_JWT_SECRET_KEY=SECRET,
        PYTHONDONTWRITEBYTECODE="1",
    )
    if redis_url is not None:
        env["FLASK_COCART_JWT_RATELIMIT_STORAGE_URI"] = redis_url
    env.update(extra or {})
    return env


@dataclass
class Server:
    """One gunicorn master with its workers."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: IO[bytes]
    seen_pids: set[int] = field(default_factory=set)
    #: The path :meth:`wait_ready` polls (it must answer 200 with ``X-Worker-Pid``).
    ready_path: str = "/products"

    def worker_pids(self) -> set[int]:
        """The current workers (children of the master)."""
        pids: set[int] = set()
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{self.process.pid}/task").iterdir():
                with contextlib.suppress(OSError):
                    pids.update(int(p) for p in (task / "children").read_text().split())
        return pids

    def log_text(self) -> str:
        """What gunicorn and the workers wrote to stderr so far."""
        self.log.flush()
        self.log.seek(0)
        return self.log.read().decode("utf-8", "replace")

    def kill_worker(self, pid: int) -> None:
        """SIGKILL one worker; gunicorn's master starts a replacement."""
        if pid not in self.worker_pids():
            raise ValueError(f"{pid} is not a worker of {self.name}")
        os.kill(pid, signal.SIGKILL)

    def wait_ready(self, workers: int, timeout: float = 60.0) -> None:
        """Poll until ``workers`` distinct live workers have answered."""
        deadline = time.monotonic() + timeout
        answered: set[int] = set()
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"gunicorn {self.name} exited with {self.process.returncode}:\n"
                    + self.log_text()[-5000:]
                )
            replies = concurrently(
                [lambda: call(self.port, "GET", self.ready_path, timeout=5)] * (2 * workers),
                timeout=30,
            )
            answered |= {r.pid for r in replies if r.status == 200 and r.pid is not None}
            live = self.worker_pids()
            if len(answered & live) >= workers:
                self.seen_pids |= answered & live
                return
            time.sleep(0.1)
        raise TimeoutError(
            f"gunicorn {self.name} not ready after {timeout} s:\n" + self.log_text()[-5000:]
        )

    def wait_replaced(self, killed: int, workers: int = 2, timeout: float = 30.0) -> set[int]:
        """Wait until the master runs ``workers`` workers again, without ``killed``,
        and every one of them answers."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"gunicorn {self.name} exited with {self.process.returncode}:\n"
                    + self.log_text()[-5000:]
                )
            pids = self.worker_pids()
            if len(pids) == workers and killed not in pids:
                self.wait_ready(workers, timeout=max(1.0, deadline - time.monotonic()))
                return pids
            time.sleep(0.05)
        raise AssertionError(f"worker {killed} of {self.name} was not replaced")

    def signal_stop(self) -> None:
        """Ask the master for a quick shutdown (``SIGINT``: workers exit at once)."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGINT)

    def stop(self, grace: float = 0.5) -> None:
        """Stop the master and its workers; kill the process group if they linger.

        The tests need no graceful exit (the database and Redis see closed
        connections either way), so the grace period is short.
        """
        self.signal_stop()
        try:
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass  # killed below
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
            self.log.close()


def _die_with_parent() -> None:
    """In the child: get SIGKILL if the launching process dies (Linux).

    Without it, a test run killed from outside would leave its servers
    running; gunicorn's workers exit by themselves once their master is gone.
    """
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def launch(
    name: str,
    env: Mapping[str, str],
    *,
    workers: int = 2,
    app_spec: str = APP_SPEC,
    ready_path: str = "/products",
) -> Server:
    """Start gunicorn on a free port (not waiting for readiness).

    :param app_spec: the app gunicorn loads (default: the tagged shop).
    :param ready_path: a path of that app that answers 200 with ``X-Worker-Pid``.
    """
    port = free_port()
    log = tempfile.TemporaryFile(prefix=f"gunicorn-{name}-")  # noqa: SIM115 - closed by stop()
    command = [
        str(GUNICORN),
        "--workers",
        str(workers),
        "--bind",
        f"127.0.0.1:{port}",
        "--timeout",
        "30",
        "--graceful-timeout",
        "3",
        "--log-level",
        "warning",
        app_spec,
    ]
    try:
        process = subprocess.Popen(  # noqa: S603 - fixed command line
            command,
            cwd=REPO,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
    except BaseException:
        log.close()
        raise
    return Server(name, port, process, log, ready_path=ready_path)


@contextlib.contextmanager
def running(
    names: Sequence[str],
    env: Mapping[str, str] | Sequence[Mapping[str, str]],
    *,
    workers: int = 2,
    on_exit: Callable[[list[Server]], None] | None = None,
    app_spec: str = APP_SPEC,
    ready_path: str = "/products",
) -> Iterator[list[Server]]:
    """Start one gunicorn per name, wait until all their workers answer, stop them after.

    :param env: one environment for all, or one per server.
    :param on_exit: called with the servers before they are stopped (e.g. to
        dump their logs when a test failed).
    :param app_spec: the app gunicorn loads (default: the tagged shop).
    :param ready_path: a path of that app that answers 200 with ``X-Worker-Pid``.
    """
    envs = [env] * len(names) if isinstance(env, Mapping) else list(env)
    servers: list[Server] = []
    try:
        for name, each in zip(names, envs, strict=True):
            servers.append(
                launch(name, each, workers=workers, app_spec=app_spec, ready_path=ready_path)
            )
        for server in servers:
            server.wait_ready(workers)
        yield servers
    finally:
        try:
            if on_exit is not None:
                on_exit(servers)
        finally:
            for server in servers:
                server.signal_stop()
            deadline = time.monotonic() + 0.5
            for server in servers:
                server.stop(grace=max(0.0, deadline - time.monotonic()))

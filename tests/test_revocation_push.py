"""Revocations pushed between processes: PostgreSQL ``LISTEN/NOTIFY``, Redis pub/sub.

Two apps on one database stand for two workers. Their revocation views poll
once an hour here, so what reaches the other app within the deadline came by
push; the subscription's own reads of the database are counted to be sure.
The "restart" of a server is a proxy in front of it cutting every connection
and refusing new ones for a while, as a restart does.
"""

from __future__ import annotations

import logging
import os
import random
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from flask import Flask

from flask_cocart_jwt.push import MAX_IDS_PER_MESSAGE, decode, encode, redis_target
from flask_cocart_jwt.revocation import RevocationView
from tests.conftest import AuthActions, assert_error, closed_port, require_server
from tests.integration.proxy import TcpProxy
from tests.support import AppFactory, app_state, close_app

pytestmark = pytest.mark.needs_server

#: The longest a test waits for a push or a reconnection (never reached when it works).
DEADLINE = 10.0
#: The way each backend pushes.
WAYS = {"postgresql": "postgresql", "mariadb": "redis"}


@pytest.fixture(autouse=True)
def no_polling(monkeypatch: pytest.MonkeyPatch) -> None:
    """Views poll once an hour and reconnect quickly: only a push is fast."""
    monkeypatch.setattr(RevocationView, "poll_interval", 3600.0)
    monkeypatch.setattr(RevocationView, "heartbeat", 0.2)
    monkeypatch.setattr(RevocationView, "max_backoff", 0.2)


def via(proxy: TcpProxy, url: str) -> str:
    """``url`` with its host and port replaced by the proxy's."""
    parts = urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = (userinfo + "@" if userinfo else "") + f"127.0.0.1:{proxy.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def upstream(url: str, default_port: int) -> TcpProxy:
    parts = urlsplit(url)
    return TcpProxy(parts.hostname or "127.0.0.1", parts.port or default_port)


class Pair:
    """Worker A, which revokes, and worker B, which must learn of it by push."""

    def __init__(self, new_app: AppFactory, a_config: dict[str, Any], b_config: dict[str, Any]):
        self.app_a, self.app_b = new_app(**a_config), new_app(**b_config)
        self.a = AuthActions(self.app_a.test_client())
        self.b = AuthActions(self.app_b.test_client())
        self.view_b = app_state(self.app_b).revocations
        assert self.view_b is not None
        self.reads_b = 0
        store_b = app_state(self.app_b).store
        read = store_b.revoked_sessions

        def counted(horizon: int) -> list[tuple[str, int]]:
            self.reads_b += 1
            return read(horizon)

        store_b.revoked_sessions = counted  # type: ignore[method-assign]

    def wait_pushing(self) -> None:
        deadline = time.monotonic() + DEADLINE
        while not self.view_b.pushing:  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "worker B never subscribed"
            time.sleep(0.02)

    def revoke_on_a(self, session_id: str) -> None:
        with self.app_a.test_request_context():
            assert self.app_a.extensions["cocart_jwt"].revoke_session(session_id)

    def wait_refused_on_b(self, access_token: str) -> None:
        deadline = time.monotonic() + DEADLINE
        while True:
            response = self.b.get("/me", access_token)
            if response.status_code == 401 or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        assert_error(response, 401, "session_revoked")


@pytest.fixture(params=["postgresql", "mariadb"])
def backend(request: pytest.FixtureRequest) -> str:
    """PostgreSQL pushes itself; MariaDB pushes through Redis."""
    return str(request.param)


@pytest.fixture
def redis_url() -> str:
    return require_server("redis")


@pytest.fixture
def pair(
    backend: str,
    server_databases: dict[str, str],
    make_app: Callable[..., Flask],
    redis_url: str,
) -> Iterator[Callable[..., Pair]]:
    """``pair(b_database=None, b_redis=None)``: two workers on ``backend``.

    B may reach the database or Redis through other URLs (a proxy).
    """
    from tests.conftest import _drop_token_tables
    from tests.support import app_factory

    url = server_databases[backend]
    _drop_token_tables(url)
    with app_factory(make_app, url) as new_app:

        def build(b_database: str | None = None, b_redis: str | None = None) -> Pair:
            a_config: dict[str, Any] = {"COCART_JWT_RATELIMIT_STORAGE_URI": redis_url}
            b_config = {
                "COCART_JWT_DATABASE_URI": b_database or url,
                "COCART_JWT_RATELIMIT_STORAGE_URI": b_redis or redis_url,
            }
            return Pair(new_app, a_config, b_config)

        yield build
    _drop_token_tables(url)


def test_a_revocation_reaches_the_other_worker_by_push(pair: Callable[..., Pair]) -> None:
    workers = pair()
    first, second = workers.a.tokens(), workers.a.tokens()
    assert workers.b.get("/me", first["access_token"]).status_code == 200  # B's view runs
    workers.wait_pushing()
    reads = workers.reads_b

    workers.revoke_on_a(first["session_id"])

    workers.wait_refused_on_b(first["access_token"])
    assert workers.reads_b == reads  # no poll read it: it came by push
    assert workers.b.get("/me", second["access_token"]).status_code == 200


def test_the_push_reconnects_and_heals_after_a_restart(
    pair: Callable[..., Pair], backend: str, server_databases: dict[str, str], redis_url: str
) -> None:
    """B's push connection dies with the server; a revocation made meanwhile
    is read when B reconnects, and the next one arrives by push again."""
    if backend == "postgresql":
        proxy = upstream(server_databases[backend], 5432)
        workers = pair(b_database=via(proxy, server_databases[backend]))
    else:
        proxy = upstream(redis_url, 6379)
        workers = pair(b_redis=via(proxy, redis_url))
    with proxy:
        missed, later, alive = workers.a.tokens(), workers.a.tokens(), workers.a.tokens()
        assert workers.b.get("/me", missed["access_token"]).status_code == 200
        workers.wait_pushing()
        proxy.cut()  # the "restart": connections dropped, new ones refused
        deadline = time.monotonic() + DEADLINE
        while workers.view_b.pushing:  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "B did not notice the outage"
            time.sleep(0.02)
        workers.revoke_on_a(missed["session_id"])  # B cannot hear this one
        proxy.restore()
        workers.wait_pushing()
        workers.wait_refused_on_b(missed["access_token"])  # healed on reconnection
        reads = workers.reads_b

        workers.revoke_on_a(later["session_id"])

        workers.wait_refused_on_b(later["access_token"])
        assert workers.reads_b == reads
        assert workers.b.get("/me", alive["access_token"]).status_code == 200


@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_rolled_back_revocation_is_never_announced(pair: Callable[..., Pair]) -> None:
    """``NOTIFY`` travels with the revocation's transaction: none if it rolls back."""
    workers = pair()
    rolled_back, committed = workers.a.tokens("alice"), workers.a.tokens("bob")
    assert workers.b.get("/me", rolled_back["access_token"]).status_code == 200
    workers.wait_pushing()
    store = app_state(workers.app_a).store
    with store.engine.connect() as conn:
        transaction = conn.begin()
        assert store.revoke_user("alice", "test", now=int(time.time()), conn=conn)
        transaction.rollback()

    workers.revoke_on_a(committed["session_id"])

    workers.wait_refused_on_b(committed["access_token"])
    # Messages arrive in commit order: alice's would have come first.
    assert workers.b.get("/me", rolled_back["access_token"]).status_code == 200


def test_messages() -> None:
    ids = [f"session{i:04d}" for i in range(MAX_IDS_PER_MESSAGE + 1)]
    messages = list(encode(ids, 1700000000))
    assert len(messages) == 2
    assert all(len(m.encode()) < 8000 for m in messages)
    decoded = [decode(m) for m in messages]
    assert decoded == [(ids[:MAX_IDS_PER_MESSAGE], 1700000000), (ids[-1:], 1700000000)]
    assert decode(messages[1].encode()) == (ids[-1:], 1700000000)
    for bad in ("", "1700000000", "x abc", "-1 abc", "17 a b\x00", "17 " + "a" * 33, b"\xff", 7):
        assert decode(bad) is None


def test_redis_urls() -> None:
    assert redis_target("redis://h:6379/3") == ("redis://h:6379/3", 3)
    assert redis_target("rediss://:pw@h/2") == ("rediss://:pw@h/2", 2)
    assert redis_target("redis://h") == ("redis://h", 0)
    assert redis_target("redis+unix:///tmp/r.sock?db=4") == ("unix:///tmp/r.sock?db=4", 4)
    assert redis_target("valkey://h/1") == ("redis://h/1", 1)
    for other in ("memory://", "redis+sentinel://h/m", "redis+cluster://h", "", None):
        assert redis_target(other) is None


@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_forked_worker_listens_on_its_own(pair: Callable[..., Pair]) -> None:
    """A worker forked from a process whose push was live (gunicorn ``--preload``)
    starts its own listener and leaves the parent's connection alone."""
    workers = pair()
    parent_token, child_token = workers.a.tokens("alice"), workers.a.tokens("bob")
    assert workers.b.get("/me", parent_token["access_token"]).status_code == 200
    workers.wait_pushing()

    with warnings.catch_warnings():  # Python 3.12+: fork() of a process with threads
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: B forked
        code = 1
        try:
            assert not workers.view_b.pushing  # type: ignore[union-attr]
            assert workers.b.get("/me", child_token["access_token"]).status_code == 200
            workers.wait_pushing()  # a listener of its own
            workers.revoke_on_a(child_token["session_id"])
            workers.wait_refused_on_b(child_token["access_token"])
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0

    # The parent's listener lived through the child's life and exit.
    assert workers.view_b.pushing  # type: ignore[union-attr]
    workers.wait_refused_on_b(child_token["access_token"])
    reads = workers.reads_b
    workers.revoke_on_a(parent_token["session_id"])
    workers.wait_refused_on_b(parent_token["access_token"])
    assert workers.reads_b == reads


def test_redis_down_slows_no_revocation(
    make_app: Callable[..., Flask],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Redis unreachable: the revocation is made, in this process at once and
    for the others by their polls, and the failed publish is logged."""
    # alembic's fileConfig (in other tests) disables existing loggers
    monkeypatch.setattr(logging.getLogger("flask_cocart_jwt.push"), "disabled", False)
    app = make_app(
        COCART_JWT_RATELIMIT_ENABLED=False,
        COCART_JWT_RATELIMIT_STORAGE_URI=f"redis://127.0.0.1:{closed_port()}/0",
    )
    try:
        auth = AuthActions(app.test_client())
        tokens = auth.tokens()
        assert auth.get("/me", tokens["access_token"]).status_code == 200
        with caplog.at_level(logging.WARNING, logger="flask_cocart_jwt.push"):
            revoke = auth.post("/auth/revoke", tokens["access_token"])
        assert revoke.json == {"revoked": True}
        assert_error(auth.get("/me", tokens["access_token"]), 401, "session_revoked")
        assert "Could not publish a revocation" in caplog.text
        assert not app_state(app).revocations.pushing  # type: ignore[union-attr]
    finally:
        close_app(app)


def test_a_reconnecting_listener_leaves_the_global_random_alone(
    make_app: Callable[..., Flask],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The reconnect jitter has its own generator: the global one, which apps
    and tests seed (Hypothesis checks it), is not touched from a thread."""
    random.seed(1234)
    state = random.getstate()
    app = make_app(
        COCART_JWT_RATELIMIT_ENABLED=False,
        COCART_JWT_RATELIMIT_STORAGE_URI=f"redis://127.0.0.1:{closed_port()}/0",
    )
    try:
        with caplog.at_level(logging.WARNING, logger="flask_cocart_jwt.revocation"):
            auth = AuthActions(app.test_client())
            assert auth.get("/me", auth.tokens()["access_token"]).status_code == 200
            deadline = time.monotonic() + DEADLINE
            while "no connection" not in caplog.text and time.monotonic() < deadline:
                time.sleep(0.05)
            assert "no connection" in caplog.text
            time.sleep(0.5)  # a few more failed attempts, each waiting with jitter
    finally:
        close_app(app)
    assert random.getstate() == state

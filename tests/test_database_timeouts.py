"""``COCART_JWT_DATABASE_TIMEOUT``: the extension's own engine waits for its database no longer.

The database is reached through a TCP proxy in the test process that freezes
(keeps the connections, forwards nothing: a paused server), or drops every
connection (a restart). Requests run in a thread of their own, so that one
waiting for the database can be told apart without timing it: it is still
running when the generous deadline has passed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from sqlalchemy import Engine, make_url, text

from flask_cocart_jwt import deadlines
from flask_cocart_jwt.database import embedded_engine, timeout_connect_args
from tests.conftest import NO_LIMITS, AuthActions, assert_error
from tests.integration.proxy import TcpProxy, through
from tests.support import app_state, close_app

TIMEOUT = 1
#: How long a request may take before it counts as waiting for the database.
DEADLINE = 15.0


@pytest.fixture(params=["postgresql", "mariadb"])
def proxied(
    request: pytest.FixtureRequest, server_databases: dict[str, str]
) -> Iterator[tuple[str, TcpProxy]]:
    """A server database's URL through a proxy, and the proxy."""
    url = server_databases[request.param]
    parts = urlsplit(url)
    with TcpProxy(parts.hostname or "127.0.0.1", parts.port or 0) as proxy:
        yield through(url, proxy.port), proxy


@pytest.fixture
def proxied_app(
    make_app: Callable[..., Flask], proxied: tuple[str, TcpProxy]
) -> Iterator[Callable[..., Flask]]:
    apps: list[Flask] = []

    def factory(**config: Any) -> Flask:
        app = make_app(
            COCART_JWT_DATABASE_URI=proxied[0],
            COCART_JWT_DATABASE_TIMEOUT=TIMEOUT,
            **NO_LIMITS,
            **config,
        )
        apps.append(app)
        return app

    yield factory
    proxied[1].thaw()
    for app in apps:
        close_app(app)


def within_deadline(call: Callable[[], Any]) -> Any:
    """``call()`` in a thread; fails the test if it has not returned by the deadline."""
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(call()), daemon=True)
    thread.start()
    thread.join(DEADLINE)
    assert not thread.is_alive(), "the request waited for the frozen database"
    assert result, "the request raised"
    return result[0]


def test_a_frozen_database_answers_503_while_protected_views_answer(
    proxied_app: Callable[..., Flask], proxied: tuple[str, TcpProxy]
) -> None:
    auth = AuthActions(proxied_app().test_client())
    tokens = auth.tokens()
    assert auth.get("/me", tokens["access_token"]).status_code == 200
    proxy = proxied[1]

    proxy.freeze()
    for _ in range(2):  # a pooled connection, then a new one
        assert_error(within_deadline(auth.login), 503, "service_unavailable")
    assert_error(
        within_deadline(lambda: auth.refresh(tokens["refresh_token"])), 503, "service_unavailable"
    )
    me = within_deadline(lambda: auth.get("/me", tokens["access_token"]))
    assert me.status_code == 200  # the revocation check is in memory

    proxy.thaw()
    assert auth.refresh(tokens["refresh_token"]).status_code == 200


def test_a_restarted_database_costs_no_error(
    proxied_app: Callable[..., Flask], proxied: tuple[str, TcpProxy]
) -> None:
    auth = AuthActions(proxied_app(COCART_JWT_REVOCATION_CHECK=False).test_client())
    tokens = auth.tokens()
    proxy = proxied[1]
    proxy.cut()
    proxy.restore()
    assert auth.refresh(tokens["refresh_token"]).status_code == 200
    assert auth.login().status_code == 200


def test_a_full_pool_answers_503_after_the_timeout(
    proxied_app: Callable[..., Flask],
) -> None:
    app = proxied_app(COCART_JWT_REVOCATION_CHECK=False)
    auth = AuthActions(app.test_client())
    auth.tokens()
    engine = app_state(app).store.engine
    held = [engine.connect() for _ in range(engine.pool.size() + 10)]  # size + overflow
    try:
        assert_error(within_deadline(auth.login), 503, "service_unavailable")
    finally:
        for conn in held:
            conn.close()
    assert auth.login().status_code == 200


def counted_pings(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """The connections ``engine`` pings from now on, one entry per ping."""
    pings: list[object] = []
    ping = engine.dialect.do_ping

    def counting(dbapi_connection: Any) -> bool:
        pings.append(dbapi_connection)
        return ping(dbapi_connection)

    monkeypatch.setattr(engine.dialect, "do_ping", counting)
    return pings


def use(engine: Engine) -> None:
    with engine.begin() as conn:
        assert conn.execute(text("SELECT 1")).scalar() == 1


@pytest.fixture(params=["postgresql", "mariadb"])
def own_engine(
    request: pytest.FixtureRequest, server_databases: dict[str, str]
) -> Iterator[Engine]:
    engine = embedded_engine(server_databases[request.param], TIMEOUT)
    yield engine
    engine.dispose()


def test_a_connection_checked_in_a_moment_ago_is_not_pinged(
    own_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    pings = counted_pings(own_engine, monkeypatch)
    for _ in range(3):
        use(own_engine)  # one connection: made, then checked in a moment before each use
    if own_engine.dialect.name == "postgresql":
        assert pings == []
    else:  # PyMySQL shows no socket to look at: pinged as before
        assert len(pings) == 2


def test_a_connection_idle_longer_is_pinged(
    own_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    pings = counted_pings(own_engine, monkeypatch)
    use(own_engine)
    monkeypatch.setattr(deadlines, "RECENT", 0.0)  # every checkin is now longer ago
    use(own_engine)
    use(own_engine)
    assert len(pings) == 2


def test_a_recent_connection_closed_by_the_server_is_pinged(
    proxied: tuple[str, TcpProxy], monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = embedded_engine(proxied[0], TIMEOUT)
    try:
        use(engine)
        pings = counted_pings(engine, monkeypatch)
        proxied[1].cut()  # a moment after its checkin, the connection ends
        proxied[1].restore()
        use(engine)  # pinged, found dead, replaced: no error
        assert len(pings) == 1
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "postgresql+psycopg://u@h/db",
            {"connect_timeout": 2, "options": "-c statement_timeout=1500"},
        ),
        (
            "postgresql://u@h/db?connect_timeout=9&options=-c%20search_path%3Dauth",
            {"options": "-c statement_timeout=1500 -c search_path=auth"},
        ),
        (
            "mysql+pymysql://u@h/db",
            {"connect_timeout": 1.5, "read_timeout": 1.5, "write_timeout": 1.5},
        ),
        (
            "mysql+pymysql://u@h/db?read_timeout=30",
            {"connect_timeout": 1.5, "write_timeout": 1.5},
        ),
        ("mysql+mysqldb://u@h/db", {"connect_timeout": 2, "read_timeout": 2, "write_timeout": 2}),
        ("postgresql+pg8000://u@h/db", {"timeout": 1.5}),
    ],
)
def test_driver_timeouts(url: str, expected: dict[str, Any]) -> None:
    args, cut_sockets = timeout_connect_args(make_url(url), 1.5)
    assert args == expected
    assert cut_sockets == url.startswith(("postgresql://", "postgresql+psycopg://"))

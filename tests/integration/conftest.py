"""Fixtures of the integration tests: real gunicorn servers on real backends.

``cluster(**env)`` starts the example shop as two independent gunicorn
servers (two workers each, no ``--preload``) sharing one database and one
Redis database (``/5``, flushed first); keyword arguments are ``FLASK_*``
settings, e.g. ``cluster(COCART_JWT_REFRESH_REUSE_INTERVAL="0")``. The
database is emptied, then the shop's init step (``flask init-db``: shop
tables, token tables, demo user) runs once in this process before any worker
starts, as a deployment runs it. Servers are always stopped; when a test
fails, their stderr is printed.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Generator, Iterator, Mapping
from contextlib import ExitStack

import pytest

from tests.conftest import require_server
from tests.integration import servers as srv

#: The database the integration servers use, created next to the test one
#: and dropped at the end; one per test run, so that concurrent runs (other
#: checkouts, a developer next to CI) never drop each other's tables.
DATABASE_NAME = f"cocart_jwt_it_{os.getpid()}"


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed:
        item.stash[FAILED] = True
    return report


FAILED = pytest.StashKey[bool]()


@pytest.fixture(scope="session")
def databases() -> Iterator[Callable[[str], str]]:
    """``databases(backend)``: the URL of this run's database on that backend."""
    created: dict[str, tuple[str, str]] = {}

    def get(backend: str) -> str:
        base = require_server(backend)
        if backend not in created:
            created[backend] = (base, srv.dedicated_database(base, DATABASE_NAME))
        return created[backend][1]

    yield get
    for base, url in created.values():
        if url != base:
            srv.drop_database(base, DATABASE_NAME)


@pytest.fixture(params=["postgresql", "mariadb"])
def database_url(request: pytest.FixtureRequest, databases: Callable[[str], str]) -> str:
    """This run's database on each server backend, emptied and seeded."""
    url = databases(request.param)
    srv.reset_database(url)
    return url


@pytest.fixture
def postgresql_url(databases: Callable[[str], str]) -> str:
    """Like ``database_url``, PostgreSQL only."""
    url = databases("postgresql")
    srv.reset_database(url)
    return url


@pytest.fixture
def fresh_postgresql_url(databases: Callable[[str], str]) -> str:
    """This run's PostgreSQL database, emptied: no table at all, not initialised."""
    url = databases("postgresql")
    srv.empty_database(url)
    return url


@pytest.fixture
def redis_url() -> str:
    """The shared Redis, database ``/5``, flushed."""
    url = srv.redis_db_url(require_server("redis"))
    srv.flush_redis(url)
    return url


def dump_logs(request: pytest.FixtureRequest) -> Callable[[list[srv.Server]], None]:
    """Print the servers' stderr if the test failed."""

    def dump(servers: list[srv.Server]) -> None:
        if request.node.stash.get(FAILED, False) or sys.exc_info()[0] is not None:
            for server in servers:
                print(f"\n----- gunicorn {server.name} stderr -----", file=sys.stderr)
                print(server.log_text()[-20000:], file=sys.stderr)

    return dump


@pytest.fixture
def start_servers(request: pytest.FixtureRequest) -> Iterator[Callable[..., list[srv.Server]]]:
    """``start_servers(database_url, redis_url, names=("a", "b"), per_server=None,
    workers=2, **settings)``.

    Settings are ``FLASK_*`` variables without the prefix, for every server;
    ``per_server`` adds settings by server name; ``environ`` adds other
    environment variables as they are (e.g. ``GUNICORN_CMD_ARGS``);
    ``workers`` is the number of workers of each server; ``app_spec`` and
    ``ready_path`` are those of :func:`servers.running`. Servers started
    this way are stopped at teardown.
    """
    with ExitStack() as stack:

        def start(
            database_url: str,
            redis_url: str | None,
            names: tuple[str, ...] = ("a", "b"),
            per_server: Mapping[str, Mapping[str, str]] | None = None,
            environ: Mapping[str, str] | None = None,
            workers: int = 2,
            app_spec: str = srv.APP_SPEC,
            ready_path: str = "/products",
            **settings: str,
        ) -> list[srv.Server]:
            envs = []
            for name in names:
                each = {**settings, **(per_server or {}).get(name, {})}
                extra = {f"FLASK_{key}": value for key, value in each.items()}
                extra.update(environ or {})
                envs.append(srv.server_env(database_url, redis_url, extra))
            return stack.enter_context(
                srv.running(
                    names,
                    envs,
                    workers=workers,
                    on_exit=dump_logs(request),
                    app_spec=app_spec,
                    ready_path=ready_path,
                )
            )

        yield start


@pytest.fixture
def cluster(
    database_url: str, redis_url: str, start_servers: Callable[..., list[srv.Server]]
) -> Callable[..., list[srv.Server]]:
    """``cluster(**settings)``: two servers on ``database_url`` and ``redis_url``."""

    def start(**settings: str) -> list[srv.Server]:
        return start_servers(database_url, redis_url, **settings)

    return start

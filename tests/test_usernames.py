"""Usernames with NUL or other control characters are ``invalid_request`` before any callback.

The user's ``credentials_checker`` typically passes the name to a ``text``
column: PostgreSQL cannot hold a NUL there (psycopg raises ``DataError``, a
500). The checker here looks the name up in a real table on each backend.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from flask_cocart_jwt import CoCartJWT
from tests.conftest import User, assert_error

CONTROL_NAMES = [
    "ali\x00ce",
    "\x00",
    "alice\x00",
    "ali\x1bce",
    "ali\nce",
    "ali\tce",
    "ali\x7fce",
    "ali\x85ce",
    "ali\x9fce",
]


@pytest.fixture
def users_engine(database_uri: str) -> Iterator[sa.Engine]:
    """A ``users`` table holding ``alice`` on each backend."""
    engine = sa.create_engine(database_uri)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE IF EXISTS cocart_test_users"))
        conn.execute(sa.text("CREATE TABLE cocart_test_users (name VARCHAR(255))"))
        conn.execute(sa.text("INSERT INTO cocart_test_users (name) VALUES ('alice')"))
    try:
        yield engine
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE IF EXISTS cocart_test_users"))
        engine.dispose()


@pytest.fixture
def checked_app(make_app: Callable[..., Flask], users_engine: sa.Engine) -> tuple[Flask, list[str]]:
    """An app whose checker queries the users table; the names it saw."""
    ext = CoCartJWT()
    app = make_app(extension=ext, COCART_JWT_RATELIMIT_ENABLED=False)
    seen: list[str] = []

    @ext.credentials_checker
    def check(username: str, password: str) -> Any:
        seen.append(username)
        with users_engine.connect() as conn:
            row = conn.execute(
                sa.text("SELECT name FROM cocart_test_users WHERE name = :name"),
                {"name": username},
            ).first()
        return User(username) if row is not None and password == "wonderland" else None

    return app, seen


def _basic(username: str, password: str) -> dict[str, str]:
    raw = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


@pytest.mark.parametrize("name", CONTROL_NAMES, ids=repr)
def test_control_characters_in_usernames_are_refused(
    checked_app: tuple[Flask, list[str]], name: str
) -> None:
    app, seen = checked_app
    client = app.test_client()
    answers = [
        client.post("/auth/login", json={"username": name, "password": "wonderland"}),
        client.post("/auth/login", data={"username": name, "password": "wonderland"}),
        client.post("/auth/login", headers=_basic(name, "wonderland")),
    ]
    for response in answers:
        assert_error(response, 400, "invalid_request")
        assert response.json["message"] == (
            "The field 'username' must not contain control characters."
        )
    assert seen == []


def test_ordinary_names_still_reach_the_checker(checked_app: tuple[Flask, list[str]]) -> None:
    app, seen = checked_app
    client = app.test_client()
    assert client.post("/auth/login", json={"username": "alice", "password": "wonderland"}).json[
        "access_token"
    ]
    # Spaces and non-ASCII letters are not control characters.
    response = client.post("/auth/login", json={"username": "Zoë Ünal", "password": "x"})
    assert_error(response, 401, "invalid_credentials")
    assert seen == ["alice", "Zoë Ünal"]

"""The shop example: a new user gets a token and calls protected routes."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from examples.shop import create_app
from tests.conftest import SECRET, assert_error


@pytest.fixture
def shop(tmp_path: Any) -> Flask:
    app = create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'shop.sqlite3'}",
            "COCART_JWT_SECRET_KEY": SECRET,
        }
    )
    return app


def _login(client: Any, password: str = "demo-password") -> Any:
    return client.post("/auth/login", json={"username": "demo", "password": password})


def test_readme_flow(shop: Flask) -> None:
    client = shop.test_client()
    assert client.get("/products").status_code == 200
    assert_error(client.get("/cart"), 401, "missing_token")
    login = _login(client)
    assert login.status_code == 200
    assert login.json["user"]["username"] == "demo"
    bearer = {"Authorization": f"Bearer {login.json['access_token']}"}
    added = client.post("/cart", json={"product_id": 2, "quantity": 1}, headers=bearer)
    assert added.status_code == 201
    cart = client.get("/cart", headers=bearer)
    assert cart.json == {"items": [{"product_id": 2, "quantity": 1}]}


def test_wrong_password(shop: Flask) -> None:
    assert_error(_login(shop.test_client(), "nope"), 401, "invalid_credentials")


def test_password_change_logs_out_everywhere(shop: Flask) -> None:
    client = shop.test_client()
    first = _login(client).json
    second = _login(client).json
    bearer = {"Authorization": f"Bearer {first['access_token']}"}
    changed = client.post(
        "/account/password", json={"new_password": "a-much-better-password"}, headers=bearer
    )
    assert changed.status_code == 200
    other = {"Authorization": f"Bearer {second['access_token']}"}
    assert_error(client.get("/cart", headers=other), 401, "session_revoked")
    refresh = client.post("/auth/refresh-token", json={"refresh_token": second["refresh_token"]})
    assert_error(refresh, 401, "invalid_refresh_token")
    assert _login(client, "a-much-better-password").status_code == 200

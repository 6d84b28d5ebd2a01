"""Rate limits across processes (one Redis) and with the storage unreachable.

The shared-Redis tests need a Redis server (``require_server``); the
unreachable-storage tests point at a closed port and need none.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask

from flask_cocart_jwt import CoCartJWT
from flask_cocart_jwt.limits import RateLimits
from flask_cocart_jwt.storage_health import PROBE_INTERVAL_MIN
from tests.conftest import AuthActions, User, assert_error, require_server
from tests.integration.proxy import TcpProxy
from tests.support import assert_limited, current_extension, header_triple, redis_cleanup

UNREACHABLE = "redis://127.0.0.1:1/0"


def limits_of(app: Flask) -> RateLimits:
    with app.app_context():
        limits = current_extension()[1].limits
    assert limits is not None
    return limits


@pytest.fixture
def shared_prefix() -> Iterator[str]:
    url = require_server("redis")
    prefix = f"/auth-{uuid.uuid4().hex[:12]}"
    yield prefix
    redis_cleanup(url, prefix)


def test_two_apps_sharing_redis_enforce_one_limit(
    make_app: Callable[..., Flask], shared_prefix: str
) -> None:
    url = require_server("redis")
    apps = [
        make_app(COCART_JWT_RATELIMIT_STORAGE_URI=url, COCART_JWT_URL_PREFIX=shared_prefix)
        for _ in range(2)
    ]
    one, two = (AuthActions(app.test_client(), shared_prefix) for app in apps)
    token = one.tokens()["access_token"]
    assert two.post(f"{shared_prefix}/validate-token", token).status_code == 200
    second = one.post(f"{shared_prefix}/validate-token", token)
    assert header_triple(second)[:2] == (2, 0)
    assert_limited(two.post(f"{shared_prefix}/validate-token", token))
    assert_limited(one.post(f"{shared_prefix}/validate-token", token))


def test_failed_logins_are_counted_across_apps(
    make_app: Callable[..., Flask], shared_prefix: str
) -> None:
    url = require_server("redis")
    apps = [
        make_app(COCART_JWT_RATELIMIT_STORAGE_URI=url, COCART_JWT_URL_PREFIX=shared_prefix)
        for _ in range(2)
    ]
    one, two = (AuthActions(app.test_client(), shared_prefix) for app in apps)
    for i in range(5):
        assert (one if i % 2 else two).login("bob", "wrong").status_code == 401
    assert_limited(one.login("bob"))
    assert_limited(two.login("bob"))


def test_another_prefix_is_another_key_space(
    make_app: Callable[..., Flask], shared_prefix: str
) -> None:
    url = require_server("redis")
    other = shared_prefix + "-other"
    try:
        first = make_app(COCART_JWT_RATELIMIT_STORAGE_URI=url, COCART_JWT_URL_PREFIX=shared_prefix)
        second = make_app(COCART_JWT_RATELIMIT_STORAGE_URI=url, COCART_JWT_URL_PREFIX=other)
        for _ in range(10):
            assert AuthActions(first.test_client(), shared_prefix).login().status_code == 200
        assert_limited(AuthActions(first.test_client(), shared_prefix).login())
        assert AuthActions(second.test_client(), other).login().status_code == 200
    finally:
        redis_cleanup(url, other)


def test_redis_keys_hold_no_token(make_app: Callable[..., Flask], shared_prefix: str) -> None:
    import redis

    url = require_server("redis")
    app = make_app(COCART_JWT_RATELIMIT_STORAGE_URI=url, COCART_JWT_URL_PREFIX=shared_prefix)
    auth = AuthActions(app.test_client(), shared_prefix)
    tokens = auth.tokens()
    auth.post(f"{shared_prefix}/validate-token", tokens["access_token"])
    auth.refresh(tokens["refresh_token"])
    auth.login("alice", "wrong")
    client = redis.Redis.from_url(url)
    try:
        keys = [
            k.decode()
            for k in client.scan_iter(match=f"LIMITS:LIMITER/cocart_jwt/{shared_prefix}/*")
        ]
    finally:
        client.close()
    scopes = {k.split(f"{shared_prefix}/")[1].split("/")[0] for k in keys}
    assert scopes == {
        "login_per_ip",
        "login_failures_per_username",
        "login_failures_per_username_global",
        "validate_per_ip",
        "validate_per_token",
        "refresh_per_ip",
        "refresh_per_token",
    }
    joined = " ".join(keys)
    for secret in (tokens["access_token"], tokens["refresh_token"], "alice"):
        assert secret not in joined
    with app.app_context():
        jti = current_extension()[1].verify(tokens["access_token"])["jti"]
    assert jti not in joined
    assert limits_of(app).key("ratelimit-jti", jti) in joined


# -- storage unreachable ------------------------------------------------------------


def test_unreachable_storage_falls_back_to_memory(
    make_app: Callable[..., Flask], caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(COCART_JWT_RATELIMIT_STORAGE_URI=UNREACHABLE)
    auth = AuthActions(app.test_client())
    with caplog.at_level(logging.WARNING):
        token = auth.tokens()["access_token"]
    assert "Rate-limit storage unreachable" in caplog.text
    assert "alice" not in caplog.text
    first = auth.post("/auth/validate-token", token)
    assert header_triple(first)[:2] == (2, 1)
    assert auth.post("/auth/validate-token", token).status_code == 200
    assert_limited(auth.post("/auth/validate-token", token))


def test_unreachable_storage_reject(make_app: Callable[..., Flask]) -> None:
    app = make_app(
        COCART_JWT_RATELIMIT_STORAGE_URI=UNREACHABLE,
        COCART_JWT_RATELIMIT_ON_STORAGE_ERROR="reject",
        COCART_JWT_LIMIT_PROTECTED_PER_TOKEN="5/minute",
    )
    client = app.test_client()
    with app.app_context():
        token = app.extensions["cocart_jwt"].issue_tokens(User("alice")).access_token
    bearer = {"Authorization": f"Bearer {token}"}
    responses = [
        client.post("/auth/login", json={"username": "alice", "password": "wonderland"}),
        client.post("/auth/refresh-token", json={"refresh_token": "rt_x"}),
        client.post("/auth/validate-token", headers={"Authorization": "Bearer x.y.z"}),
        client.post("/auth/revoke", json={"refresh_token": "rt_x"}),
        # Per-token limits count verified tokens (by jti): an invalid one is a 401 first.
        client.get("/me", headers=bearer),
    ]
    for response in responses:
        assert_error(response, 503, "service_unavailable")
        assert response.headers["Retry-After"] == "1"  # the next health check
        assert "X-RateLimit-Limit" not in response.headers
    assert_error(client.get("/me", headers={"Authorization": "Bearer x.y.z"}), 401, "invalid_token")


def test_unreachable_storage_allow(make_app: Callable[..., Flask]) -> None:
    app = make_app(
        COCART_JWT_RATELIMIT_STORAGE_URI=UNREACHABLE,
        COCART_JWT_RATELIMIT_ON_STORAGE_ERROR="allow",
    )
    auth = AuthActions(app.test_client())
    token = auth.tokens()["access_token"]
    for _ in range(5):
        response = auth.post("/auth/validate-token", token)
        assert response.status_code == 200
        assert "X-RateLimit-Limit" not in response.headers


def test_storage_back_off(make_app: Callable[..., Flask]) -> None:
    app = make_app(COCART_JWT_RATELIMIT_STORAGE_URI=UNREACHABLE)
    health = limits_of(app).health()
    client = app.test_client()
    client.post("/auth/revoke", json={"refresh_token": "rt_x"})
    assert health.down
    assert health.interval == PROBE_INTERVAL_MIN
    # While down, requests go straight to the fallback: no probe, no new failure.
    # (The next probe is put an hour away, so a slow machine cannot make it due.)
    health.next_probe = health.clock() + 3600
    epoch, next_probe = health.epoch, health.next_probe
    for _ in range(5):
        client.post("/auth/revoke", json={"refresh_token": "rt_x"})
    assert (health.epoch, health.next_probe, health.failed_probes) == (epoch, next_probe, 0)
    # A probe that is due runs once (a PING to the closed port) and grows the back-off once.
    health.next_probe = health.clock()
    for _ in range(5):
        client.post("/auth/revoke", json={"refresh_token": "rt_x"})
    assert health.failed_probes == 1
    assert health.interval == 2 * PROBE_INTERVAL_MIN
    assert health.epoch == epoch


def test_storage_recovers_at_the_next_health_check(
    make_app: Callable[..., Flask], shared_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = urlsplit(require_server("redis"))
    with TcpProxy(url.hostname or "127.0.0.1", url.port or 6379) as proxy:
        app = make_app(
            COCART_JWT_RATELIMIT_STORAGE_URI=f"redis://127.0.0.1:{proxy.port}{url.path}",
            COCART_JWT_RATELIMIT_ON_STORAGE_ERROR="reject",
            COCART_JWT_URL_PREFIX=shared_prefix,
        )
        health = limits_of(app).health()
        client = app.test_client()

        def revoke() -> Any:
            return client.post(f"{shared_prefix}/revoke", json={"refresh_token": "rt_x"})

        assert revoke().status_code == 200
        proxy.cut()
        down = revoke()
        assert_error(down, 503, "service_unavailable")
        assert down.headers["Retry-After"] == "1"  # the next health check is that close
        assert health.down
        proxy.restore()
        assert_error(revoke(), 503, "service_unavailable")  # no health check due yet
        health.next_probe = health.clock()  # it is due: the next request checks
        with caplog.at_level(logging.WARNING):
            assert revoke().status_code == 200
        assert not health.down
        assert "Rate-limit storage reachable again" in caplog.text
        # Counted in Redis again: the first request, the one after the check, this one.
        assert header_triple(revoke())[:2] == (10, 7)


def test_user_limiter_with_unreachable_storage(make_app: Callable[..., Flask]) -> None:
    from flask_limiter import Limiter
    from flask_limiter.util import get_remote_address

    limiter = Limiter(get_remote_address, storage_uri=UNREACHABLE)
    app = make_app(extension=CoCartJWT(limiter=limiter))
    limiter.init_app(app)
    auth = AuthActions(app.test_client())
    token = auth.tokens()["access_token"]
    assert auth.post("/auth/validate-token", token).status_code == 200
    assert auth.post("/auth/validate-token", token).status_code == 200
    assert_limited(auth.post("/auth/validate-token", token))


def test_redis_client_has_timeouts(make_app: Callable[..., Flask]) -> None:
    app = make_app(COCART_JWT_RATELIMIT_STORAGE_URI=UNREACHABLE)
    storage: Any = limits_of(app).primary().storage
    kwargs = storage.storage.connection_pool.connection_kwargs
    assert kwargs["socket_timeout"] == kwargs["socket_connect_timeout"] == 0.5

"""The replay cache of DPoP proofs: in the rate-limit storage, shared on Redis.

Two apps on one Redis stand for two workers here (the gunicorn version is
``tests/integration/test_dpop_replay.py``); a storage that cannot be reached
follows ``COCART_JWT_RATELIMIT_ON_STORAGE_ERROR`` like the rate limits.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from limits.storage import MemoryStorage

from flask_cocart_jwt.replay import ProofIds
from tests.conftest import NO_LIMITS, assert_error, require_server
from tests.dpop_support import Bound, ProofKey, assert_dpop_error
from tests.support import redis_cleanup

UNREACHABLE = "redis://127.0.0.1:1/0"


@pytest.mark.needs_server
@pytest.mark.parametrize("limits", [True, False], ids=["limits-on", "limits-off"])
def test_a_proof_is_accepted_once_by_two_apps_on_one_redis(
    make_app: Callable[..., Flask], limits: bool
) -> None:
    url = require_server("redis")
    prefix = f"/dpop-{uuid.uuid4().hex[:8]}"
    config: dict[str, Any] = {
        "COCART_JWT_DPOP": "optional",
        "COCART_JWT_RATELIMIT_STORAGE_URI": url,
        "COCART_JWT_URL_PREFIX": prefix,
        "COCART_JWT_RATELIMIT_ENABLED": limits,
    }
    first = make_app(**config)
    second = make_app(**config)
    try:
        key = ProofKey()
        login = first.test_client().post(
            f"{prefix}/login",
            json={"username": "alice", "password": "wonderland"},
            headers={"DPoP": key.proof("POST", f"{prefix}/login")},
        )
        assert login.status_code == 200, login.json
        token = login.json["access_token"]
        # The second app checks tokens of the first (one secret); the proof once.
        headers = {
            "Authorization": f"DPoP {token}",
            "DPoP": key.proof("GET", "/me", access_token=token),
        }
        assert second.test_client().get("/me", headers=headers).status_code == 200
        assert_dpop_error(first.test_client().get("/me", headers=headers))
        assert_dpop_error(second.test_client().get("/me", headers=headers))
    finally:
        redis_cleanup(url, prefix)


def test_unreachable_storage_falls_back_to_memory(make_app: Callable[..., Flask]) -> None:
    app = make_app(COCART_JWT_DPOP="optional", COCART_JWT_RATELIMIT_STORAGE_URI=UNREACHABLE)
    subject = Bound(app, ProofKey())
    proof = subject.good()
    assert subject.send(proof).status_code == 200
    assert_dpop_error(subject.send(proof))


def test_unreachable_storage_reject(make_app: Callable[..., Flask]) -> None:
    app = make_app(
        COCART_JWT_DPOP="optional",
        COCART_JWT_RATELIMIT_STORAGE_URI=UNREACHABLE,
        COCART_JWT_RATELIMIT_ON_STORAGE_ERROR="reject",
        **NO_LIMITS,
    )
    key = ProofKey()
    response = app.test_client().post(
        "/auth/login",
        json={"username": "alice", "password": "wonderland"},
        headers={"DPoP": key.proof("POST", "/auth/login")},
    )
    assert_error(response, 503, "service_unavailable")


def test_unreachable_storage_allow(make_app: Callable[..., Flask]) -> None:
    app = make_app(
        COCART_JWT_DPOP="optional",
        COCART_JWT_RATELIMIT_STORAGE_URI=UNREACHABLE,
        COCART_JWT_RATELIMIT_ON_STORAGE_ERROR="allow",
        **NO_LIMITS,
    )
    subject = Bound(app, ProofKey())
    proof = subject.good()
    assert subject.send(proof).status_code == 200
    assert subject.send(proof).status_code == 200  # documented: no replay check
    assert_dpop_error(subject.send(subject.key.proof("GET", "/me")))  # every other check runs


class FakeClock:
    """A monotonic clock moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_in_process_ids_are_seen_once_within_their_expiry() -> None:
    clock = FakeClock()
    ids = ProofIds(clock)
    assert ids.first_use("a", 10)
    assert not ids.first_use("a", 10)
    clock.now += 9.9
    assert not ids.first_use("a", 10)  # a replay does not extend the expiry...
    clock.now += 0.2
    assert ids.first_use("a", 10)  # ...so the id is new again after it


def test_in_process_ids_are_dropped_as_they_expire() -> None:
    clock = FakeClock()
    ids = ProofIds(clock)
    for number in range(1000):
        assert ids.first_use(f"id-{number}", 5)
        clock.now += 0.01
    assert len(ids) == 501  # those of the last 5 s (and the one that expires right now)
    clock.now += 5
    assert ids.first_use("late", 5)
    assert len(ids) == 1


def test_a_shorter_expiry_behind_a_longer_one_still_expires_on_time() -> None:
    clock = FakeClock()
    ids = ProofIds(clock)
    assert ids.first_use("long", 100)
    assert ids.first_use("short", 1)
    clock.now += 2
    assert ids.first_use("short", 1)


def test_a_memory_storage_keeps_proof_ids_out_of_the_limits_storage(
    make_app: Callable[..., Flask],
) -> None:
    app = make_app(COCART_JWT_DPOP="optional", COCART_JWT_RATELIMIT_STORAGE_URI="memory://")
    subject = Bound(app, ProofKey())
    proof = subject.good()
    assert subject.send(proof).status_code == 200
    assert_dpop_error(subject.send(proof))
    with app.app_context():
        limits = app.extensions["cocart_jwt"].service.limits
    assert limits is not None
    storage = limits.primary().storage
    assert isinstance(storage, MemoryStorage)
    assert not [key for key in storage.storage if "dpop_jti" in key]

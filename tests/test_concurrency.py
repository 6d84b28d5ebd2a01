"""Concurrent uses of one refresh token, and revocation racing a refresh.

Real threads and real connections, on SQLite, PostgreSQL and MariaDB: the
rotation must be atomic on every backend.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask

from tests.conftest import AuthActions, assert_error
from tests.support import AppFactory, live_tokens, table_rows

THREADS = 16


def run_together(app: Flask, calls: list[Callable[[AuthActions], Any]]) -> list[Any]:
    """Run each call in a thread of its own, released at the same instant."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)
    errors: list[BaseException] = []

    def worker(index: int, call: Callable[[AuthActions], Any]) -> None:
        auth = AuthActions(app.test_client())
        try:
            barrier.wait(timeout=10)
            results[index] = call(auth)
        except BaseException as exc:  # reported below, in the main thread
            errors.append(exc)

    threads = [
        threading.Thread(target=worker, args=(i, call), daemon=True) for i, call in enumerate(calls)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    assert not errors, errors
    return results


def summary(responses: list[Any]) -> Counter[tuple[int, str]]:
    """``(status, error code or "")`` of each response, counted."""
    assert all(r.status_code != 500 for r in responses), [r.get_data()[:200] for r in responses]
    return Counter(
        (r.status_code, r.json.get("error", "") if r.status_code != 200 else "") for r in responses
    )


def test_concurrent_refresh_without_reuse_interval(new_app: AppFactory) -> None:
    app = new_app(COCART_JWT_REFRESH_REUSE_INTERVAL=0)
    tokens = AuthActions(app.test_client()).tokens()
    token = tokens["refresh_token"]
    responses = run_together(app, [lambda auth: auth.refresh(token)] * THREADS)
    counts = summary(responses)
    assert counts[(200, "")] == 1, counts
    assert set(counts) <= {
        (200, ""),
        (401, "refresh_token_reused"),
        (401, "invalid_refresh_token"),
    }, counts
    assert counts[(401, "refresh_token_reused")] >= 1, counts
    for response in responses:
        if response.status_code == 401:
            assert_error(response, 401, response.json["error"])
    # Replaying the token revoked the family: the winner's pair is dead too.
    winner = next(r.json for r in responses if r.status_code == 200)
    auth = AuthActions(app.test_client())
    assert_error(auth.refresh(winner["refresh_token"]), 401, "invalid_refresh_token")
    assert_error(auth.get("/me", winner["access_token"]), 401, "session_revoked")
    assert len(live_tokens(app, tokens["session_id"])) <= 1
    [session] = table_rows(app, "sessions")
    assert session["revoked_reason"] == "refresh_token_reused"


def test_concurrent_refresh_inside_reuse_interval(new_app: AppFactory) -> None:
    app = new_app()
    tokens = AuthActions(app.test_client()).tokens()
    token = tokens["refresh_token"]
    responses = run_together(app, [lambda auth: auth.refresh(token)] * THREADS)
    assert summary(responses) == Counter({(200, ""): THREADS})
    successors = {r.json["refresh_token"] for r in responses}
    assert len(successors) == 1
    assert len({r.json["access_token"] for r in responses}) == THREADS
    [successor] = successors
    live = live_tokens(app, tokens["session_id"])
    assert len(live) == 1
    assert len(table_rows(app, "refresh_tokens")) == 2
    # The one successor carries the session on.
    auth = AuthActions(app.test_client())
    assert auth.refresh(successor).status_code == 200


def test_concurrent_refresh_of_the_successor(new_app: AppFactory) -> None:
    """Two generations raced at once: still one live token, never a fork."""
    app = new_app()
    auth = AuthActions(app.test_client())
    tokens = auth.tokens()
    successor = auth.refresh(tokens["refresh_token"]).json["refresh_token"]
    calls: list[Callable[[AuthActions], Any]] = [
        lambda a: a.refresh(tokens["refresh_token"]),
        lambda a: a.refresh(successor),
    ] * (THREADS // 2)
    counts = summary(run_together(app, calls))
    assert set(counts) <= {(200, ""), (401, "refresh_token_reused"), (401, "invalid_refresh_token")}
    assert len(live_tokens(app, tokens["session_id"])) <= 1


@pytest.mark.parametrize("rounds", [6])
def test_revoke_racing_refresh(new_app: AppFactory, rounds: int) -> None:
    app = new_app()
    for _ in range(rounds):
        tokens = AuthActions(app.test_client()).tokens()
        token = tokens["refresh_token"]

        def revoke(auth: AuthActions, token: str = token) -> Any:
            return auth.client.post("/auth/revoke", json={"refresh_token": token})

        def refresh(auth: AuthActions, token: str = token) -> Any:
            return auth.refresh(token)

        responses = run_together(app, [revoke, refresh, refresh, refresh])
        assert responses[0].status_code == 200
        assert responses[0].json == {"revoked": True}
        counts = summary(responses[1:])
        assert set(counts) <= {(200, ""), (401, "invalid_refresh_token")}, counts

        auth = AuthActions(app.test_client())
        session = next(r for r in table_rows(app, "sessions") if r["id"] == tokens["session_id"])
        assert session["revoked_at"] is not None
        assert_error(auth.refresh(token), 401, "invalid_refresh_token")
        assert_error(auth.get("/me", tokens["access_token"]), 401, "session_revoked")
        for response in responses[1:]:
            if response.status_code == 200:
                body = response.json
                assert_error(auth.refresh(body["refresh_token"]), 401, "invalid_refresh_token")
                assert_error(auth.get("/me", body["access_token"]), 401, "session_revoked")


def test_revoke_user_racing_refresh(new_app: AppFactory) -> None:
    app = new_app()
    sessions = [AuthActions(app.test_client()).tokens() for _ in range(4)]
    calls: list[Callable[[AuthActions], Any]] = [
        lambda a: a.post("/auth/revoke-all", sessions[0]["access_token"])
    ]
    calls += [lambda a, s=s: a.refresh(s["refresh_token"]) for s in sessions]
    responses = run_together(app, calls)
    assert responses[0].status_code == 200
    assert summary(responses[1:]).keys() <= {(200, ""), (401, "invalid_refresh_token")}
    auth = AuthActions(app.test_client())
    assert all(row["revoked_at"] is not None for row in table_rows(app, "sessions"))
    for response, session in zip(responses[1:], sessions, strict=True):
        assert_error(auth.refresh(session["refresh_token"]), 401, "invalid_refresh_token")
        if response.status_code == 200:
            body = response.json
            assert_error(auth.refresh(body["refresh_token"]), 401, "invalid_refresh_token")
            assert_error(auth.get("/me", body["access_token"]), 401, "session_revoked")

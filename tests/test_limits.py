"""Rate limits on the token routes, on the memory and Redis storages alike.

Windows are crossed with ``time-machine`` (the ``limits`` storages read
``time.time``), never by sleeping.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import time_machine
from flask import Flask, jsonify

from flask_cocart_jwt import (
    CoCartJWT,
    ConfigurationError,
    rate_limit_exceeded,
    refresh_token_reused,
)
from flask_cocart_jwt.limits import RateLimits, parse_limit
from tests.conftest import PASSWORDS, AuthActions, assert_error, require_server
from tests.support import assert_limited, current_extension, header_triple, redis_cleanup

START = 1_900_000_000.0


@dataclass
class Limited:
    """An app under test with its client helper and route prefix."""

    app: Flask
    auth: AuthActions
    prefix: str

    def validate(self, token: str, **kwargs: Any) -> Any:
        return self.auth.post(f"{self.prefix}/validate-token", token, **kwargs)

    def login_from(self, ip: str, username: str = "alice", password: str | None = None) -> Any:
        """Log in as a client at ``ip`` (``request.remote_addr``)."""
        password = PASSWORDS.get(username, "x") if password is None else password
        return self.auth.client.post(
            f"{self.prefix}/login",
            json={"username": username, "password": password},
            environ_base={"REMOTE_ADDR": ip},
        )

    def revoke_from(self, ip: str) -> Any:
        """``POST /revoke`` of an unknown refresh token as a client at ``ip``."""
        return self.auth.client.post(
            f"{self.prefix}/revoke",
            json={"refresh_token": "rt_unknown"},
            environ_base={"REMOTE_ADDR": ip},
        )

    def limits(self) -> RateLimits:
        with self.app.app_context():
            _, state = current_extension()
        assert state.limits is not None
        return state.limits


@pytest.fixture(params=["memory", "redis"])
def storage_uri(request: pytest.FixtureRequest) -> str:
    """The rate-limit storage under test."""
    if request.param == "memory":
        return "memory://"
    return require_server("redis")


@pytest.fixture
def limited(make_app: Callable[..., Flask], storage_uri: str) -> Iterator[Callable[..., Limited]]:
    """``limited(**config)``: an app on the storage under test, with its own key space."""
    prefixes: list[str] = []

    def factory(*, prefix: str | None = None, **config: Any) -> Limited:
        prefix = prefix or f"/auth-{uuid.uuid4().hex[:12]}"
        prefixes.append(prefix)
        config.setdefault("COCART_JWT_RATELIMIT_STORAGE_URI", storage_uri)
        app = make_app(COCART_JWT_URL_PREFIX=prefix, **config)

        @app.get("/public")
        def public() -> Any:
            return jsonify(ok=True)

        return Limited(app, AuthActions(app.test_client(), prefix), prefix)

    yield factory
    if storage_uri.startswith("redis"):
        for prefix in prefixes:
            redis_cleanup(storage_uri, prefix)


@pytest.fixture
def clock() -> Iterator[time_machine.Coordinates]:
    with time_machine.travel(START, tick=False) as traveller:
        yield traveller


# -- defaults -------------------------------------------------------------------


def test_validate_per_ip_default(limited: Callable[..., Limited], clock: Any) -> None:
    t = limited()
    token = t.auth.tokens()["access_token"]
    first = t.validate(token)
    assert first.status_code == 200
    assert header_triple(first) == (2, 1, int(START) + 60)
    assert "Retry-After" not in first.headers
    assert header_triple(t.validate(token))[:2] == (2, 0)
    blocked = t.validate(token)
    assert_limited(blocked)
    assert header_triple(blocked) == (2, 0, int(START) + 60)
    assert blocked.headers["Retry-After"] == "60"
    clock.shift(61)
    assert t.validate(token).status_code == 200


def test_validate_per_token_default(limited: Callable[..., Limited], clock: Any) -> None:
    t = limited(COCART_JWT_LIMIT_VALIDATE_PER_IP="100/minute")
    token = t.auth.tokens()["access_token"]
    for left in range(9, -1, -1):
        response = t.validate(token)
        assert response.status_code == 200
        assert header_triple(response)[:2] == (10, left)
    assert_limited(t.validate(token))
    other = t.auth.tokens("bob")["access_token"]
    assert t.validate(other).status_code == 200


def test_validate_counts_invalid_tokens_per_ip(limited: Callable[..., Limited]) -> None:
    t = limited()
    assert_error(t.validate("garbage"), 401, "invalid_token")
    assert_error(t.auth.client.post(f"{t.prefix}/validate-token"), 401, "missing_token")
    assert_limited(t.validate("garbage-2"))


def test_refresh_per_ip_default(limited: Callable[..., Limited], clock: Any) -> None:
    t = limited()
    for i in range(10):
        response = t.auth.refresh(f"rt_unknown{i}")
        assert_error(response, 401, "invalid_refresh_token")
        assert int(response.headers["X-RateLimit-Remaining"]) <= 9 - i
    assert_limited(t.auth.refresh("rt_another"))
    clock.shift(61)
    assert_error(t.auth.refresh("rt_another"), 401, "invalid_refresh_token")


def test_refresh_per_ip_counts_malformed_requests(limited: Callable[..., Limited]) -> None:
    t = limited(COCART_JWT_LIMIT_REFRESH_PER_IP="1/minute")
    assert_error(t.auth.client.post(f"{t.prefix}/refresh-token", data="x"), 400, "invalid_request")
    assert_limited(t.auth.refresh("rt_whatever"))


def test_refresh_per_token_default(limited: Callable[..., Limited]) -> None:
    t = limited()
    tokens = t.auth.tokens()
    first = t.auth.refresh(tokens["refresh_token"])
    assert first.status_code == 200
    assert header_triple(first)[:2] == (2, 1)
    # a retry inside the reuse interval is allowed once more, then limited
    assert t.auth.refresh(tokens["refresh_token"]).status_code == 200
    assert_limited(t.auth.refresh(tokens["refresh_token"]))
    # the successor is another key
    assert t.auth.refresh(first.json["refresh_token"]).status_code == 200


def test_a_replay_over_its_per_token_limit_still_revokes_the_session(
    limited: Callable[..., Limited],
) -> None:
    t = limited(COCART_JWT_LIMIT_REFRESH_PER_TOKEN="1 per minute")
    first = t.auth.tokens()
    second = t.auth.refresh(first["refresh_token"]).json
    third = t.auth.refresh(second["refresh_token"]).json
    seen: list[dict[str, Any]] = []

    def record(_sender: Flask, **extra: Any) -> None:
        seen.append(extra)

    with refresh_token_reused.connected_to(record, t.app):
        # The stolen first token is replayed: over its limit, so the replayer gets 429...
        assert_limited(t.auth.refresh(first["refresh_token"]))
    # ... and the session is revoked now, not when the limit would let the replay through.
    assert seen == [{"identity": "alice", "session_id": first["session_id"]}]
    assert_error(t.auth.refresh(third["refresh_token"]), 401, "invalid_refresh_token")
    assert_error(t.auth.get("/me", third["access_token"]), 401, "session_revoked")


def test_a_retry_over_its_per_token_limit_is_not_a_replay(
    limited: Callable[..., Limited],
) -> None:
    t = limited(COCART_JWT_LIMIT_REFRESH_PER_TOKEN="1 per minute")
    first = t.auth.tokens()
    second = t.auth.refresh(first["refresh_token"]).json
    # A retry inside the reuse interval (a lost response): limited, the session kept.
    assert_limited(t.auth.refresh(first["refresh_token"]))
    assert t.auth.refresh(second["refresh_token"]).status_code == 200


def test_the_per_ip_limit_runs_before_replay_detection(limited: Callable[..., Limited]) -> None:
    t = limited(
        COCART_JWT_LIMIT_REFRESH_PER_IP="2 per minute",
        COCART_JWT_LIMIT_REFRESH_PER_TOKEN="1 per minute",
    )
    first = t.auth.tokens()
    second = t.auth.refresh(first["refresh_token"]).json
    third = t.auth.refresh(second["refresh_token"]).json
    scopes: list[str] = []

    def record(_sender: Flask, **extra: Any) -> None:
        scopes.append(extra["scope"])

    with rate_limit_exceeded.connected_to(record, t.app):
        assert_limited(t.auth.refresh(first["refresh_token"]))
    assert scopes == ["refresh_per_ip"]  # refused before the token was looked at
    elsewhere = t.auth.client.post(
        f"{t.prefix}/refresh-token",
        json={"refresh_token": third["refresh_token"]},
        environ_base={"REMOTE_ADDR": "198.51.100.9"},
    )
    assert elsewhere.status_code == 200


def test_login_per_ip_default(limited: Callable[..., Limited], clock: Any) -> None:
    t = limited()
    for i in range(10):
        response = t.auth.login("alice" if i % 2 else "bob")
        assert response.status_code == 200
        # the fewest remaining: the username's 5 failures until the IP has fewer
        assert header_triple(response)[:2] == ((10, 9 - i) if 9 - i <= 5 else (5, 5))
    assert_limited(t.auth.login())
    clock.shift(61)
    assert t.auth.login().status_code == 200


def test_login_failures_per_username(limited: Callable[..., Limited], clock: Any) -> None:
    t = limited(COCART_JWT_LIMIT_LOGIN_PER_IP="100/minute")
    # successful logins do not count
    for _ in range(6):
        assert t.auth.login("alice").status_code == 200
    for left in range(4, -1, -1):
        response = t.auth.login("alice", "wrong")
        assert_error(response, 401, "invalid_credentials")
        assert header_triple(response)[:2] == (5, left)
    # blocked, even with the right password, and whatever the case
    assert_limited(t.auth.login("alice"))
    assert_limited(
        t.auth.client.post(
            f"{t.prefix}/login", json={"username": " ALICE ", "password": "wonderland"}
        )
    )
    # another user is not affected
    assert t.auth.login("bob").status_code == 200
    clock.shift(61)
    assert t.auth.login("alice").status_code == 200


def test_a_stranger_cannot_lock_a_user_out(limited: Callable[..., Limited], clock: Any) -> None:
    t = limited(COCART_JWT_LIMIT_LOGIN_PER_IP="100/minute")
    attacker, user = "203.0.113.66", "198.51.100.7"
    for _ in range(5):
        assert_error(t.login_from(attacker, password="guess"), 401, "invalid_credentials")
    # the attacker's address is throttled for alice, even with her password ...
    assert_limited(t.login_from(attacker, password="guess"))
    assert_limited(t.login_from(attacker))
    # ... but alice, from her own address, still logs in
    assert t.login_from(user).status_code == 200
    # and her own failures are counted apart from the attacker's
    for left in range(4, -1, -1):
        response = t.login_from(user, password="typo")
        assert_error(response, 401, "invalid_credentials")
        assert header_triple(response)[:2] == (5, left)
    assert_limited(t.login_from(user))
    # other users are not affected at the attacker's address
    assert t.login_from(attacker, "bob").status_code == 200


def test_login_failures_per_username_global_ceiling(
    limited: Callable[..., Limited], clock: Any
) -> None:
    t = limited(
        COCART_JWT_LIMIT_LOGIN_PER_IP="100/minute",
        COCART_JWT_LIMIT_LOGIN_FAILURES_PER_USERNAME_GLOBAL="8 per hour",
    )
    # a distributed guess: four addresses, two failures each, under the per-address limit
    for i in range(8):
        response = t.login_from(f"203.0.113.{i // 2}", password="guess")
        assert_error(response, 401, "invalid_credentials")
    # the ceiling across addresses now refuses alice everywhere, for the hour
    seen: list[str] = []
    with rate_limit_exceeded.connected_to(lambda _s, **kw: seen.append(kw["scope"]), t.app):
        blocked = t.login_from("198.51.100.7")
    assert_limited(blocked, 3600)
    assert seen == ["login_failures_per_username_global"]
    assert t.login_from("198.51.100.7", "bob").status_code == 200
    clock.shift(3601)
    assert t.login_from("198.51.100.7").status_code == 200


def test_global_login_failure_ceiling_defaults_to_100_per_hour(
    limited: Callable[..., Limited], clock: Any
) -> None:
    t = limited(COCART_JWT_LIMIT_LOGIN_PER_IP="", COCART_JWT_RATELIMIT_DRAFT_HEADERS=True)
    for i in range(100):
        response = t.login_from(f"10.0.{i // 4}.1", password="guess")
        assert_error(response, 401, "invalid_credentials")
    assert_limited(t.login_from("10.1.0.1"), 3600)
    assert (
        '"login_failures_per_username_global";q=100;w=3600'
        in (response.headers["RateLimit-Policy"])
    )


def test_revoke_per_ip_default(limited: Callable[..., Limited]) -> None:
    t = limited()
    for _ in range(10):
        response = t.auth.client.post(f"{t.prefix}/revoke", json={"refresh_token": "rt_nope"})
        assert response.json == {"revoked": True}
    assert_limited(t.auth.client.post(f"{t.prefix}/revoke", json={"refresh_token": "rt_nope"}))


def test_protected_per_token_is_opt_in(limited: Callable[..., Limited]) -> None:
    t = limited()
    token = t.auth.tokens()["access_token"]
    for _ in range(15):
        response = t.auth.get("/me", token)
        assert response.status_code == 200
        assert "X-RateLimit-Limit" not in response.headers


def test_protected_per_token(limited: Callable[..., Limited]) -> None:
    t = limited(COCART_JWT_LIMIT_PROTECTED_PER_TOKEN="3 per minute")
    token = t.auth.tokens()["access_token"]
    assert header_triple(t.auth.get("/me", token))[:2] == (3, 2)
    assert header_triple(t.auth.get("/optional", token))[:2] == (3, 1)  # any protected view
    assert header_triple(t.auth.get("/me", token))[:2] == (3, 0)
    assert_limited(t.auth.get("/me", token))
    other = t.auth.tokens("bob")["access_token"]
    assert t.auth.get("/me", other).status_code == 200
    # no token sent: nothing to count per token
    assert "X-RateLimit-Limit" not in t.auth.client.get("/optional").headers


def test_defaults_match_the_spec() -> None:
    from flask_cocart_jwt.config import DEFAULTS

    assert {k: v for k, v in DEFAULTS.items() if "LIMIT" in k} == {
        "COCART_JWT_LIMIT_REFRESH_PER_IP": "10 per minute",
        "COCART_JWT_LIMIT_REFRESH_PER_TOKEN": "2 per minute",
        "COCART_JWT_LIMIT_VALIDATE_PER_IP": "2 per minute",
        "COCART_JWT_LIMIT_VALIDATE_PER_TOKEN": "10 per minute",
        "COCART_JWT_LIMIT_LOGIN_PER_IP": "10 per minute",
        "COCART_JWT_LIMIT_LOGIN_FAILURES_PER_USERNAME": "5 per minute",
        "COCART_JWT_LIMIT_LOGIN_FAILURES_PER_USERNAME_GLOBAL": "100 per hour",
        "COCART_JWT_LIMIT_PROTECTED_PER_TOKEN": None,
        "COCART_JWT_LIMIT_REVOKE_PER_IP": "10 per minute",
        "COCART_JWT_RATELIMIT_ENABLED": True,
        "COCART_JWT_RATELIMIT_STORAGE_URI": "memory://",
        "COCART_JWT_RATELIMIT_STRATEGY": "moving-window",
        "COCART_JWT_RATELIMIT_ON_STORAGE_ERROR": "fallback",
        "COCART_JWT_RATELIMIT_DRAFT_HEADERS": False,
        "COCART_JWT_RATELIMIT_IPV6_PREFIX": 64,
    }


# -- headers --------------------------------------------------------------------


def test_most_restrictive_limit_in_headers(limited: Callable[..., Limited]) -> None:
    t = limited(COCART_JWT_LIMIT_VALIDATE_PER_IP="100/minute")
    token = t.auth.tokens()["access_token"]
    assert header_triple(t.validate(token))[:2] == (10, 9)  # token: fewer remaining
    t.app.config["COCART_JWT_LIMIT_VALIDATE_PER_IP"] = "3/minute"
    assert header_triple(t.validate(token))[:2] == (3, 2)  # now the IP has fewer


def test_breached_limit_wins_headers(limited: Callable[..., Limited]) -> None:
    t = limited(
        COCART_JWT_LIMIT_VALIDATE_PER_IP="2/minute",
        COCART_JWT_LIMIT_VALIDATE_PER_TOKEN="1/minute",
    )
    token = t.auth.tokens()["access_token"]
    assert header_triple(t.validate(token))[:2] == (1, 0)
    # the IP limit is now at 0 as well, but the token limit is the one breached
    blocked = t.validate(token)
    assert_limited(blocked)
    assert header_triple(blocked)[:2] == (1, 0)


def test_multi_limit_strings(limited: Callable[..., Limited], clock: Any) -> None:
    t = limited(COCART_JWT_LIMIT_REVOKE_PER_IP="3/minute;4/hour")
    post = lambda: t.auth.client.post(f"{t.prefix}/revoke", json={"refresh_token": "rt_x"})  # noqa: E731
    for _ in range(3):
        assert post().status_code == 200
    assert_limited(post())
    clock.shift(61)
    assert header_triple(post())[:2] == (4, 0)
    blocked = post()
    assert_limited(blocked, 3600)
    assert int(blocked.headers["Retry-After"]) == 3600 - 61


def test_draft_headers(limited: Callable[..., Limited], clock: Any) -> None:
    t = limited(COCART_JWT_RATELIMIT_DRAFT_HEADERS=True)
    token = t.auth.tokens()["access_token"]
    response = t.validate(token)
    assert response.headers["RateLimit-Policy"] == (
        '"validate_per_ip";q=2;w=60, "validate_per_token";q=10;w=60'
    )
    assert response.headers["RateLimit"] == '"validate_per_ip";r=1;t=60'
    assert "RateLimit" not in limited().validate(token).headers


@pytest.mark.parametrize(
    ("route", "config", "policies"),
    [
        (
            "validate",
            {"COCART_JWT_LIMIT_VALIDATE_PER_IP": "1/minute;50/hour"},
            '"validate_per_ip";q=1;w=60, "validate_per_ip_1";q=50;w=3600, '
            '"validate_per_token";q=10;w=60',
        ),
        (
            "login",
            {"COCART_JWT_LIMIT_LOGIN_PER_IP": "1/minute"},
            '"login_per_ip";q=1;w=60, "login_failures_per_username";q=5;w=60, '
            '"login_failures_per_username_global";q=100;w=3600',
        ),
    ],
)
def test_a_429_lists_the_same_policies_as_a_200(
    limited: Callable[..., Limited], route: str, config: dict[str, str], policies: str
) -> None:
    t = limited(COCART_JWT_RATELIMIT_DRAFT_HEADERS=True, **config)
    if route == "validate":
        token = t.auth.tokens()["access_token"]
        send = lambda: t.validate(token)  # noqa: E731
    else:
        send = lambda: t.auth.login()  # noqa: E731
    allowed = send()
    assert allowed.status_code == 200
    blocked = send()
    assert_limited(blocked)
    assert blocked.headers["RateLimit-Policy"] == policies
    assert allowed.headers["RateLimit-Policy"] == policies
    # the RateLimit field names the breached limit
    assert blocked.headers["RateLimit"].startswith(f'"{route}_per_ip";r=0;')


def test_no_headers_without_draft_flag_and_on_other_routes(
    limited: Callable[..., Limited],
) -> None:
    t = limited()
    token = t.auth.tokens()["access_token"]
    for _ in range(20):
        response = t.auth.client.get("/public")
        assert response.status_code == 200
        names = [name.lower() for name, _ in response.headers]
        assert not any(n.startswith(("x-ratelimit", "ratelimit", "retry-after")) for n in names)
    assert t.auth.get("/me", token).status_code == 200
    jwks = t.auth.client.get(f"{t.prefix}/jwks.json")
    assert "X-RateLimit-Limit" not in jwks.headers


def test_headers_do_not_leak_between_requests_in_one_app_context(
    limited: Callable[..., Limited],
) -> None:
    t = limited()
    token = t.auth.tokens()["access_token"]
    with t.app.app_context():
        assert "X-RateLimit-Limit" in t.validate(token).headers
        assert "X-RateLimit-Limit" not in t.auth.client.get("/public").headers


# -- configuration --------------------------------------------------------------


def test_limits_are_read_at_request_time(limited: Callable[..., Limited]) -> None:
    t = limited()
    token = t.auth.tokens()["access_token"]
    t.app.config["COCART_JWT_LIMIT_VALIDATE_PER_IP"] = "1 per minute"
    assert t.validate(token).status_code == 200
    assert_limited(t.validate(token))
    t.app.config["COCART_JWT_LIMIT_VALIDATE_PER_IP"] = ""
    assert header_triple(t.validate(token))[:2] == (10, 8)
    t.app.config["COCART_JWT_LIMIT_VALIDATE_PER_TOKEN"] = None
    response = t.validate(token)
    assert response.status_code == 200
    assert "X-RateLimit-Limit" not in response.headers


def test_disabled(limited: Callable[..., Limited]) -> None:
    t = limited(COCART_JWT_RATELIMIT_ENABLED=False)
    with t.app.app_context():
        assert current_extension()[1].limits is None
    token = t.auth.tokens()["access_token"]
    for _ in range(12):
        response = t.validate(token)
        assert response.status_code == 200
        assert "X-RateLimit-Limit" not in response.headers
    for _ in range(7):
        assert t.auth.login("alice", "wrong").status_code == 401
    assert t.auth.login("alice").status_code == 200


@pytest.mark.parametrize("strategy", ["fixed-window", "sliding-window-counter"])
def test_other_strategies(
    limited: Callable[..., Limited], strategy: str, storage_uri: str, clock: Any
) -> None:
    t = limited(COCART_JWT_RATELIMIT_STRATEGY=strategy)
    token = t.auth.tokens()["access_token"]
    assert header_triple(t.validate(token))[:2] == (2, 1)
    assert t.validate(token).status_code == 200
    assert_limited(t.validate(token))
    if storage_uri == "memory://":  # Redis expires these counters on its own clock
        clock.shift(121)
        assert t.validate(token).status_code == 200


def test_bad_limit_string_at_init(make_app: Callable[..., Flask]) -> None:
    with pytest.raises(ConfigurationError, match="COCART_JWT_LIMIT_VALIDATE_PER_IP"):
        make_app(COCART_JWT_LIMIT_VALIDATE_PER_IP="lots")


def test_bad_storage_uri_at_init(make_app: Callable[..., Flask]) -> None:
    with pytest.raises(ConfigurationError, match="COCART_JWT_RATELIMIT_STORAGE_URI"):
        make_app(COCART_JWT_RATELIMIT_STORAGE_URI="nosuch://here")


def test_parse_limit_is_cached() -> None:
    assert parse_limit("7 per minute") is parse_limit("7 per minute")
    with pytest.raises(ConfigurationError):
        parse_limit("seven")


# -- keys -----------------------------------------------------------------------


def test_spoofed_x_forwarded_for_does_not_change_the_key(
    limited: Callable[..., Limited],
) -> None:
    t = limited()
    token = t.auth.tokens()["access_token"]
    for i in range(2):
        response = t.auth.client.post(
            f"{t.prefix}/validate-token",
            headers={"Authorization": f"Bearer {token}", "X-Forwarded-For": f"10.0.0.{i}"},
        )
        assert response.status_code == 200
    spoofed = t.auth.client.post(
        f"{t.prefix}/validate-token",
        headers={
            "Authorization": f"Bearer {token}",
            "X-Forwarded-For": "203.0.113.9",
            "X-Real-IP": "203.0.113.9",
            "Forwarded": "for=203.0.113.9",
        },
    )
    assert_limited(spoofed)
    # a different remote_addr is a different client
    other = t.auth.client.post(
        f"{t.prefix}/validate-token",
        headers={"Authorization": f"Bearer {token}"},
        environ_base={"REMOTE_ADDR": "198.51.100.7"},
    )
    assert other.status_code == 200


def test_ipv6_clients_are_counted_per_64_prefix(limited: Callable[..., Limited]) -> None:
    t = limited(COCART_JWT_LIMIT_REVOKE_PER_IP="3/minute")
    rotating = ["2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:fffe", "2001:DB8:1:2:a:b:c:d"]
    for address in rotating:
        assert t.revoke_from(address).status_code == 200
    assert_limited(t.revoke_from("2001:db8:1:2:1234::5"))
    # the next /64 is another client
    assert t.revoke_from("2001:db8:1:3::1").status_code == 200


def test_ipv6_prefix_is_configurable(limited: Callable[..., Limited]) -> None:
    wide = limited(COCART_JWT_LIMIT_REVOKE_PER_IP="2/minute", COCART_JWT_RATELIMIT_IPV6_PREFIX=48)
    assert wide.revoke_from("2001:db8:1:2::1").status_code == 200
    assert wide.revoke_from("2001:db8:1:3::1").status_code == 200
    assert_limited(wide.revoke_from("2001:db8:1:ffff::1"))
    assert wide.revoke_from("2001:db8:2::1").status_code == 200
    exact = limited(COCART_JWT_LIMIT_REVOKE_PER_IP="1/minute", COCART_JWT_RATELIMIT_IPV6_PREFIX=128)
    assert exact.revoke_from("2001:db8::1").status_code == 200
    assert exact.revoke_from("2001:db8::2").status_code == 200
    assert_limited(exact.revoke_from("2001:db8::1"))


def test_ipv4_and_ipv4_mapped_clients_share_a_counter(limited: Callable[..., Limited]) -> None:
    t = limited(COCART_JWT_LIMIT_REVOKE_PER_IP="2/minute")
    assert t.revoke_from("198.51.100.7").status_code == 200
    assert t.revoke_from("::ffff:198.51.100.7").status_code == 200
    assert_limited(t.revoke_from("198.51.100.7"))
    # IPv4 addresses are not grouped: the neighbour is another client
    assert t.revoke_from("198.51.100.8").status_code == 200


def test_login_failures_per_address_use_the_ipv6_prefix(limited: Callable[..., Limited]) -> None:
    t = limited(
        COCART_JWT_LIMIT_LOGIN_PER_IP="", COCART_JWT_LIMIT_LOGIN_FAILURES_PER_USERNAME="2/minute"
    )
    for host in (1, 2):
        assert_error(
            t.login_from(f"2001:db8:5:6::{host}", password="guess"), 401, "invalid_credentials"
        )
    assert_limited(t.login_from("2001:db8:5:6::3"))
    assert t.login_from("2001:db8:5:7::1").status_code == 200


def test_per_token_keys_are_keyed_hashes(make_app: Callable[..., Flask]) -> None:
    app = make_app()
    auth = AuthActions(app.test_client())
    tokens = auth.tokens()
    auth.post("/auth/validate-token", tokens["access_token"])
    auth.refresh(tokens["refresh_token"])
    with app.app_context():
        limits = current_extension()[1].limits
        assert limits is not None
        storage = limits.primary().storage
        keys = " ".join(storage.events)  # type: ignore[attr-defined]
        jti = current_extension()[1].verify(tokens["access_token"])["jti"]
        # An access token is counted by its jti (one counter for every spelling).
        assert limits.key("ratelimit-jti", jti) in keys
        assert limits.key("ratelimit", tokens["refresh_token"]) in keys
    assert jti not in keys
    assert tokens["access_token"] not in keys
    assert tokens["refresh_token"] not in keys
    assert tokens["refresh_token"][3:20] not in keys
    assert "alice" not in keys


def test_rate_limit_exceeded_signal(limited: Callable[..., Limited]) -> None:
    t = limited(COCART_JWT_LIMIT_REVOKE_PER_IP="1 per minute")
    seen: list[dict[str, Any]] = []

    def receiver(sender: Flask, **extra: Any) -> None:
        seen.append({"sender": sender, **extra})

    with rate_limit_exceeded.connected_to(receiver):
        t.auth.client.post(f"{t.prefix}/revoke", json={"refresh_token": "rt_x"})
        assert seen == []
        t.auth.client.post(f"{t.prefix}/revoke", json={"refresh_token": "rt_x"})
    assert seen == [{"sender": t.app, "limit": "1 per minute", "scope": "revoke_per_ip"}]


def test_a_failing_signal_receiver_is_not_a_storage_outage(
    make_app: Callable[..., Flask],
) -> None:
    app = make_app(
        COCART_JWT_LIMIT_LOGIN_PER_IP="1 per minute",
        COCART_JWT_RATELIMIT_ON_STORAGE_ERROR="reject",
    )

    def receiver(_sender: Any, **_kwargs: Any) -> None:
        raise LookupError("a bug in the app's receiver")

    client = app.test_client()
    credentials = {"username": "alice", "password": "wonderland"}
    with rate_limit_exceeded.connected_to(receiver, app):
        assert client.post("/auth/login", json=credentials).status_code == 200
        with pytest.raises(LookupError):  # the receiver's own error, as with Flask's signals
            client.post("/auth/login", json=credentials)
    # ... and the storage was not marked down: limits still count normally.
    limits = app.extensions["cocart_jwt"].get_service(app).limits
    assert not limits.health().down


# -- Flask-Limiter ----------------------------------------------------------------


def test_user_supplied_limiter(make_app: Callable[..., Flask], storage_uri: str) -> None:
    from flask_limiter import Limiter
    from flask_limiter.util import get_remote_address

    limiter = Limiter(
        get_remote_address,
        default_limits=["3 per minute"],
        storage_uri=storage_uri,
        headers_enabled=True,
        key_prefix=uuid.uuid4().hex,
    )
    prefix = f"/auth-{uuid.uuid4().hex[:12]}"
    app = make_app(extension=CoCartJWT(limiter=limiter), COCART_JWT_URL_PREFIX=prefix)

    @app.get("/public")
    def public() -> Any:
        return jsonify(ok=True)

    limiter.init_app(app)
    auth = AuthActions(app.test_client(), prefix)
    try:
        token = auth.tokens()["access_token"]
        # ours: 2 per minute per IP, not the Limiter's default of 3 on top
        first = auth.post(f"{prefix}/validate-token", token)
        assert header_triple(first)[:2] == (2, 1)
        assert auth.post(f"{prefix}/validate-token", token).status_code == 200
        assert_limited(auth.post(f"{prefix}/validate-token", token))
        # the app's own limits are untouched by ours: 3 left on /public
        assert auth.client.get("/public").headers["X-RateLimit-Remaining"] == "2"
        with app.app_context():
            limits = current_extension()[1].limits
            assert limits is not None
            assert limits.primary().storage is limiter.storage
    finally:
        if storage_uri.startswith("redis"):
            redis_cleanup(storage_uri, prefix)
            limiter.reset()


@pytest.mark.parametrize("order", ["before", "after"])
def test_app_limiter_is_exempted_on_the_token_routes(tmp_path: Any, order: str) -> None:
    # Whether the app's Limiter is initialised before or after the extension.
    from flask_limiter import Limiter
    from flask_limiter.util import get_remote_address

    from tests.conftest import PASSWORDS, SECRET, User

    app = Flask(__name__, instance_path=str(tmp_path))
    app.config.update(COCART_JWT_SECRET_KEY=SECRET)
    ext = CoCartJWT()
    ext.register_credentials_checker(lambda u, p: User(u) if PASSWORDS.get(u) == p else None)
    limiter = Limiter(get_remote_address, default_limits=["1 per minute"], storage_uri="memory://")
    first, second = (limiter, ext) if order == "before" else (ext, limiter)
    first.init_app(app)
    second.init_app(app)

    @app.get("/public")
    def public() -> Any:
        return jsonify(ok=True)

    auth = AuthActions(app.test_client())
    token = auth.tokens()["access_token"]
    assert auth.post("/auth/validate-token", token).status_code == 200
    assert auth.post("/auth/validate-token", token).status_code == 200
    assert auth.client.get("/public").status_code == 200
    assert auth.client.get("/public").status_code == 429


@pytest.mark.parametrize("how", ["argument", "config"])
def test_disabled_user_limiter_disables_ours(make_app: Callable[..., Flask], how: str) -> None:
    from flask_limiter import Limiter
    from flask_limiter.util import get_remote_address

    limiter = Limiter(get_remote_address, enabled=how != "argument", storage_uri="memory://")
    config = {"RATELIMIT_ENABLED": False} if how == "config" else {}
    app = make_app(extension=CoCartJWT(limiter=limiter), **config)
    limiter.init_app(app)
    auth = AuthActions(app.test_client())
    token = auth.tokens()["access_token"]
    for _ in range(4):
        assert auth.post("/auth/validate-token", token).status_code == 200


def test_uninitialised_user_limiter_is_a_clear_error(make_app: Callable[..., Flask]) -> None:
    from flask_limiter import Limiter
    from flask_limiter.util import get_remote_address

    limiter = Limiter(get_remote_address, storage_uri="memory://")
    app = make_app(extension=CoCartJWT(limiter=limiter))
    with app.test_request_context("/auth/revoke", method="POST"):
        limits = current_extension()[1].limits
        assert limits is not None
        with pytest.raises(RuntimeError, match=r"limiter.init_app\(app\)"):
            limits.primary()


def test_time_travel_reaches_the_storage(clock: Any) -> None:
    # guard for the tests above: the limits storages read the patched clock
    assert time.time() == START
    clock.shift(61)
    assert time.time() == START + 61

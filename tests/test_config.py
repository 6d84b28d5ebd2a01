"""Configuration: every mistake is a ConfigurationError at ``init_app``."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask

from flask_cocart_jwt import CoCartJWT, ConfigurationError
from flask_cocart_jwt.config import DEFAULTS, load_settings
from tests.conftest import SECRET, AuthActions, assert_error

MakeApp = Callable[..., Flask]


def good_secret(size: int) -> str:
    """A random secret of exactly ``size`` bytes."""
    return secrets.token_urlsafe(size)[:size]


@pytest.mark.parametrize(
    ("key", "hint"),
    [
        ("COCART_JWT_SECRET", "COCART_JWT_SECRET_KEY"),
        ("COCART_JWT_ACCESS_TOKEN_EXPIRE", "COCART_JWT_ACCESS_TOKEN_EXPIRES"),
        ("COCART_JWT_ALGORITHMS", "COCART_JWT_ALGORITHM"),
        ("COCART_JWT_LEWAY", "COCART_JWT_LEEWAY"),
    ],
)
def test_unknown_key_suggests_the_right_one(make_app: MakeApp, key: str, hint: str) -> None:
    with pytest.raises(ConfigurationError, match=rf"{key} \(did you mean {hint}\?\)"):
        make_app(**{key: "x"})


def test_unknown_key_without_a_close_match(make_app: MakeApp) -> None:
    with pytest.raises(ConfigurationError, match="COCART_JWT_ZZZZZZZZZZZZZZ"):
        make_app(COCART_JWT_ZZZZZZZZZZZZZZ=1)


def test_other_prefixes_are_not_ours(make_app: MakeApp) -> None:
    make_app(JWT_SECRET_KEY="x", COCART_SOMETHING="y")


def test_defaults(tmp_path: Any) -> None:
    settings = load_settings({"COCART_JWT_SECRET_KEY": SECRET}, str(tmp_path))
    assert settings.keyring.algorithm == "HS256"
    assert settings.access_token_expires == 15 * 60
    assert settings.refresh_token_expires == 30 * 86400
    assert settings.session_max_age == 90 * 86400
    assert settings.refresh_reuse_interval == 10
    assert settings.leeway == 0
    assert settings.max_token_bytes == 8192
    assert (settings.issuer, settings.audience) == (None, None)
    assert (settings.header_name, settings.header_type) == ("Authorization", "Bearer")
    assert settings.url_prefix == "/auth"
    assert settings.database_uri.startswith("sqlite:///")
    assert settings.database_uri.endswith("cocart_jwt.sqlite3")
    assert DEFAULTS["COCART_JWT_LIMIT_PROTECTED_PER_TOKEN"] is None
    assert settings.ratelimit_ipv6_prefix == 64
    assert SECRET not in repr(settings)


def test_settings_repr_hides_uris(tmp_path: Any) -> None:
    settings = load_settings(
        {
            "COCART_JWT_SECRET_KEY": SECRET,
            "COCART_JWT_DATABASE_URI": "postgresql://user:db-password@host/db",
            "COCART_JWT_RATELIMIT_STORAGE_URI": "redis://:redis-password@host:6379/0",
        },
        str(tmp_path),
    )
    text = repr(settings)
    assert "db-password" not in text
    assert "redis-password" not in text
    assert SECRET not in text


def test_missing_secret(make_app: MakeApp) -> None:
    with pytest.raises(ConfigurationError, match="COCART_JWT_SECRET_KEY is required"):
        make_app(COCART_JWT_SECRET_KEY=None)


def test_no_fallback_to_secret_key(make_app: MakeApp) -> None:
    with pytest.raises(ConfigurationError, match="SECRET_KEY is never used"):
        make_app(COCART_JWT_SECRET_KEY=None, SECRET_KEY=SECRET)
    with pytest.raises(ConfigurationError):
        make_app(COCART_JWT_SECRET_KEY="", SECRET_KEY=SECRET)


@pytest.mark.parametrize(("algorithm", "minimum"), [("HS256", 32), ("HS384", 48), ("HS512", 64)])
def test_secret_length(make_app: MakeApp, algorithm: str, minimum: int) -> None:
    with pytest.raises(ConfigurationError, match="too short"):
        make_app(COCART_JWT_ALGORITHM=algorithm, COCART_JWT_SECRET_KEY=good_secret(minimum - 1))
    app = make_app(COCART_JWT_ALGORITHM=algorithm, COCART_JWT_SECRET_KEY=good_secret(minimum))
    assert AuthActions(app.test_client()).login().status_code == 200


def test_secret_length_counts_utf8_bytes(make_app: MakeApp) -> None:
    secret = "é" * 16 + "abcdefgh"  # 40 bytes but 24 characters
    make_app(COCART_JWT_SECRET_KEY=secret)
    make_app(COCART_JWT_SECRET_KEY=good_secret(40).encode())


@pytest.mark.parametrize(
    "secret",
    ["a" * 64, "ab" * 32, "0123456" * 10, b"\x00" * 64, "password" * 2 + "x" * 48, "abcdefgh" * 8],
)
def test_low_entropy_secret(make_app: MakeApp, secret: str | bytes) -> None:
    with pytest.raises(ConfigurationError, match="not random enough"):
        make_app(COCART_JWT_SECRET_KEY=secret)


def test_random_secrets_pass(make_app: MakeApp) -> None:
    for _ in range(20):
        make_app(COCART_JWT_SECRET_KEY=secrets.token_hex(16))
        make_app(COCART_JWT_SECRET_KEY=secrets.token_bytes(32))


@pytest.mark.parametrize("secret", [12345678901234567890123456789012345, ["x" * 40], "\ud800" * 40])
def test_ill_typed_secret(make_app: MakeApp, secret: Any) -> None:
    with pytest.raises(ConfigurationError, match="COCART_JWT_SECRET_KEY"):
        make_app(COCART_JWT_SECRET_KEY=secret)


@pytest.mark.parametrize(
    "secret",
    [
        "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n"
        "-----END PUBLIC KEY-----\n",
        '{"kty": "oct", "k": "abcdefghijklmnopqrstuvwxyz0123456789"}',
        "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 user@example.com",
    ],
)
def test_key_looking_secret(make_app: MakeApp, secret: str) -> None:
    with pytest.raises(ConfigurationError, match="not an HMAC secret"):
        make_app(COCART_JWT_SECRET_KEY=secret)


@pytest.mark.parametrize(
    "algorithm",
    ["none", "None", "NONE", "", "hs256", "HS1", "HS128", "RS1", "ES256K", "EdDSA25519", None, 256],
)
def test_unsupported_algorithm(make_app: MakeApp, algorithm: Any) -> None:
    with pytest.raises(ConfigurationError, match="COCART_JWT_ALGORITHM"):
        make_app(COCART_JWT_ALGORITHM=algorithm)


DURATIONS = [
    "COCART_JWT_ACCESS_TOKEN_EXPIRES",
    "COCART_JWT_REFRESH_TOKEN_EXPIRES",
    "COCART_JWT_SESSION_MAX_AGE",
]


@pytest.mark.parametrize("key", DURATIONS)
@pytest.mark.parametrize(
    "value",
    ["15m", "900", None, True, [900], 0, -1, 0.5, timedelta(0), timedelta(seconds=-5),
     float("nan"), float("inf"), float("-inf")],
    ids=repr,
)  # fmt: skip
def test_ill_typed_durations(make_app: MakeApp, key: str, value: Any) -> None:
    with pytest.raises(ConfigurationError, match=key):
        make_app(**{key: value})


@pytest.mark.parametrize("key", ["COCART_JWT_LEEWAY", "COCART_JWT_REFRESH_REUSE_INTERVAL"])
@pytest.mark.parametrize("value", ["10", None, False, -1, float("nan"), float("inf")], ids=repr)
def test_ill_typed_zero_allowed_durations(make_app: MakeApp, key: str, value: Any) -> None:
    with pytest.raises(ConfigurationError, match=key):
        make_app(**{key: value})


def test_durations_as_numbers_and_timedeltas(tmp_path: Any) -> None:
    settings = load_settings(
        {
            "COCART_JWT_SECRET_KEY": SECRET,
            "COCART_JWT_ACCESS_TOKEN_EXPIRES": 60,
            "COCART_JWT_REFRESH_TOKEN_EXPIRES": timedelta(hours=1),
            "COCART_JWT_LEEWAY": 0,
            "COCART_JWT_REFRESH_REUSE_INTERVAL": timedelta(0),
        },
        str(tmp_path),
    )
    assert (settings.access_token_expires, settings.refresh_token_expires) == (60, 3600)
    assert (settings.leeway, settings.refresh_reuse_interval) == (0, 0)


def test_database_timeout(tmp_path: Any) -> None:
    def timeout(**config: Any) -> float:
        settings = load_settings({"COCART_JWT_SECRET_KEY": SECRET, **config}, str(tmp_path))
        return settings.database_timeout

    assert timeout() == 5.0
    assert timeout(COCART_JWT_DATABASE_TIMEOUT=timedelta(milliseconds=1500)) == 1.5
    assert timeout(COCART_JWT_DATABASE_TIMEOUT=2) == 2.0


@pytest.mark.parametrize(
    "value",
    ["5", "5s", None, True, [5], 0, 0.05, -1, timedelta(0), timedelta(days=2), float("nan"),
     float("inf")],
    ids=repr,
)  # fmt: skip
def test_ill_typed_database_timeout(make_app: MakeApp, value: Any) -> None:
    with pytest.raises(ConfigurationError, match="COCART_JWT_DATABASE_TIMEOUT"):
        make_app(COCART_JWT_DATABASE_TIMEOUT=value)


FLAGS = [
    "COCART_JWT_REVOCATION_CHECK",
    "COCART_JWT_BIND_IP",
    "COCART_JWT_BIND_USER_AGENT",
    "COCART_JWT_RATELIMIT_ENABLED",
    "COCART_JWT_RATELIMIT_DRAFT_HEADERS",
]


@pytest.mark.parametrize("key", FLAGS)
@pytest.mark.parametrize("value", ["yes", "false", 1, 0, None])
def test_ill_typed_flags(make_app: MakeApp, key: str, value: Any) -> None:
    with pytest.raises(ConfigurationError, match=key):
        make_app(**{key: value})


LIMITS = [k for k in DEFAULTS if k.startswith("COCART_JWT_LIMIT_")]


@pytest.mark.parametrize("key", LIMITS)
@pytest.mark.parametrize(
    "value", ["abc", "10 per fortnight", "10 per minute;", " ", 10, ["10 per minute"], True]
)
def test_bad_limit_strings(make_app: MakeApp, key: str, value: Any) -> None:
    with pytest.raises(ConfigurationError, match=key):
        make_app(**{key: value})


@pytest.mark.parametrize("value", ["", None, "10/minute", "5 per second; 100 per hour"])
def test_good_limit_strings(make_app: MakeApp, value: Any) -> None:
    make_app(**dict.fromkeys(LIMITS, value))


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("COCART_JWT_MAX_TOKEN_BYTES", 255),
        ("COCART_JWT_MAX_TOKEN_BYTES", "8192"),
        ("COCART_JWT_MAX_TOKEN_BYTES", True),
        ("COCART_JWT_MAX_TOKEN_BYTES", 8192.0),
        ("COCART_JWT_MAX_SESSIONS_PER_USER", 0),
        ("COCART_JWT_MAX_SESSIONS_PER_USER", "3"),
        ("COCART_JWT_MAX_SESSIONS_PER_USER", True),
        ("COCART_JWT_HEADER_TYPE", "Bearer token"),
        ("COCART_JWT_HEADER_TYPE", ""),
        ("COCART_JWT_HEADER_NAME", ""),
        ("COCART_JWT_HEADER_NAME", None),
        ("COCART_JWT_ISSUER", ""),
        ("COCART_JWT_ISSUER", 5),
        ("COCART_JWT_AUDIENCE", ""),
        ("COCART_JWT_AUDIENCE", []),
        ("COCART_JWT_AUDIENCE", ["ok", ""]),
        ("COCART_JWT_AUDIENCE", 5),
        ("COCART_JWT_URL_PREFIX", "auth"),
        ("COCART_JWT_URL_PREFIX", None),
        ("COCART_JWT_DATABASE_URI", "tokens.db"),
        ("COCART_JWT_DATABASE_URI", 5),
        ("COCART_JWT_KEY_ID", ""),
        ("COCART_JWT_KEY_ID", 5),
        ("COCART_JWT_KEY_ID", "k" * 129),
        ("COCART_JWT_DECODE_KEYS", ["old"]),
        ("COCART_JWT_RATELIMIT_STRATEGY", "leaky-bucket"),
        ("COCART_JWT_RATELIMIT_ON_STORAGE_ERROR", "ignore"),
        ("COCART_JWT_RATELIMIT_STORAGE_URI", ""),
    ],
)
def test_ill_typed_values(make_app: MakeApp, key: str, value: Any) -> None:
    with pytest.raises(ConfigurationError, match=key):
        make_app(**{key: value})


@pytest.mark.parametrize("value", [0, 129, -64, "64", True, 64.0, None])
def test_ipv6_prefix_is_a_prefix_length(make_app: MakeApp, value: Any) -> None:
    with pytest.raises(ConfigurationError, match="COCART_JWT_RATELIMIT_IPV6_PREFIX"):
        make_app(COCART_JWT_RATELIMIT_IPV6_PREFIX=value)


@pytest.mark.parametrize("value", [1, 48, 64, 128])
def test_ipv6_prefix_lengths(tmp_path: Any, value: int) -> None:
    config = {"COCART_JWT_SECRET_KEY": SECRET, "COCART_JWT_RATELIMIT_IPV6_PREFIX": value}
    assert load_settings(config, str(tmp_path)).ratelimit_ipv6_prefix == value


def test_second_init_app_raises(make_app: MakeApp) -> None:
    ext = CoCartJWT()
    app = make_app(extension=ext)
    with pytest.raises(ConfigurationError, match="already initialised"):
        ext.init_app(app)
    with pytest.raises(ConfigurationError, match="already initialised"):
        CoCartJWT().init_app(app)


def test_config_is_read_once(make_app: MakeApp) -> None:
    app = make_app(COCART_JWT_RATELIMIT_ENABLED=False)
    auth = AuthActions(app.test_client())
    token = auth.tokens()["access_token"]
    app.config["COCART_JWT_SECRET_KEY"] = good_secret(64)
    assert auth.get("/me", token).status_code == 200


@pytest.mark.parametrize("shared", [True, False])
def test_two_apps_do_not_accept_each_others_tokens(make_app: MakeApp, shared: bool) -> None:
    ext = CoCartJWT() if shared else None
    first = make_app(extension=ext, COCART_JWT_RATELIMIT_ENABLED=False)
    second = make_app(
        extension=ext or CoCartJWT(),
        COCART_JWT_SECRET_KEY=good_secret(64),
        COCART_JWT_ALGORITHM="HS512",
        COCART_JWT_RATELIMIT_ENABLED=False,
    )
    a, b = AuthActions(first.test_client()), AuthActions(second.test_client())
    token_a, token_b = a.tokens()["access_token"], b.tokens()["access_token"]
    assert a.get("/me", token_a).status_code == 200
    assert b.get("/me", token_b).status_code == 200
    assert_error(a.get("/me", token_b), 401, "invalid_token")
    assert_error(b.get("/me", token_a), 401, "invalid_token")
    assert_error(a.post("/auth/validate-token", token_b), 401, "invalid_token")
    assert_error(b.post("/auth/validate-token", token_a), 401, "invalid_token")


def test_same_algorithm_different_secrets(make_app: MakeApp) -> None:
    first = make_app(COCART_JWT_RATELIMIT_ENABLED=False)
    second = make_app(COCART_JWT_SECRET_KEY=good_secret(48), COCART_JWT_RATELIMIT_ENABLED=False)
    a, b = AuthActions(first.test_client()), AuthActions(second.test_client())
    assert_error(b.get("/me", a.tokens()["access_token"]), 401, "invalid_token")
    # Even with the same kid, the other app's secret does not verify.
    same_kid = make_app(
        COCART_JWT_SECRET_KEY=good_secret(48),
        COCART_JWT_KEY_ID="shared",
        COCART_JWT_RATELIMIT_ENABLED=False,
    )
    with_kid = make_app(COCART_JWT_KEY_ID="shared", COCART_JWT_RATELIMIT_ENABLED=False)
    token = AuthActions(with_kid.test_client()).tokens()["access_token"]
    assert_error(AuthActions(same_kid.test_client()).get("/me", token), 401, "invalid_token")

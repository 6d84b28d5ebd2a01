"""Configuration: every ``COCART_JWT_*`` key, its default, and its validation.

:data:`DEFAULTS` is the one place where defaults are written. :func:`load_settings`
reads an app's config once, in ``init_app``, and returns a frozen
:class:`Settings`; every mistake it can see is a :class:`ConfigurationError`
with a message that says how to fix it.

The rate-limit strings (``COCART_JWT_LIMIT_*``) are checked here too, but are
read again at request time so that they can be changed on a running app.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from .cookie_settings import CookieSettings, load_cookie_settings
from .dpop_settings import DPoPSettings, load_dpop_settings
from .exceptions import ConfigurationError
from .keys import Keyring, load_keyring

PREFIX = "COCART_JWT_"

#: Every configuration key and its default value.
DEFAULTS: Mapping[str, Any] = {
    # keys
    "COCART_JWT_SECRET_KEY": None,
    "COCART_JWT_ALGORITHM": "HS256",
    "COCART_JWT_PRIVATE_KEY": None,
    "COCART_JWT_PUBLIC_KEY": None,
    "COCART_JWT_KEY_ID": None,
    "COCART_JWT_DECODE_KEYS": {},
    # lifetimes
    "COCART_JWT_ACCESS_TOKEN_EXPIRES": timedelta(minutes=15),
    "COCART_JWT_REFRESH_TOKEN_EXPIRES": timedelta(days=30),
    "COCART_JWT_SESSION_MAX_AGE": timedelta(days=90),
    "COCART_JWT_REFRESH_REUSE_INTERVAL": timedelta(seconds=10),
    "COCART_JWT_LEEWAY": timedelta(0),
    # claims and transport
    "COCART_JWT_ISSUER": None,
    "COCART_JWT_AUDIENCE": None,
    "COCART_JWT_HEADER_NAME": "Authorization",
    "COCART_JWT_HEADER_TYPE": "Bearer",
    "COCART_JWT_MAX_TOKEN_BYTES": 8192,
    "COCART_JWT_VERIFIED_TOKEN_CACHE_SIZE": 1024,
    # sessions
    "COCART_JWT_REVOCATION_CHECK": True,
    "COCART_JWT_MAX_SESSIONS_PER_USER": None,
    "COCART_JWT_BIND_IP": False,
    "COCART_JWT_BIND_USER_AGENT": False,
    # wiring
    "COCART_JWT_URL_PREFIX": "/auth",
    "COCART_JWT_DATABASE_URI": None,
    "COCART_JWT_OPENAPI_ROUTE": True,
    "COCART_JWT_DATABASE_TIMEOUT": timedelta(seconds=5),
    # rate limits
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
    # browser sessions (cookie mode, CSRF)
    "COCART_JWT_COOKIE_MODE": False,
    "COCART_JWT_REFRESH_COOKIE_NAME": None,
    "COCART_JWT_CSRF_COOKIE_NAME": "cocart_csrf",
    "COCART_JWT_CSRF_HEADER_NAME": "X-CSRF-Token",
    "COCART_JWT_CSRF_TRUSTED_ORIGINS": (),
    "COCART_JWT_COOKIE_SECURE": True,
    "COCART_JWT_COOKIE_SAMESITE": "Strict",
    "COCART_JWT_COOKIE_DOMAIN": None,
    "COCART_JWT_ACCESS_COOKIE": False,
    # sender-constrained tokens (DPoP, RFC 9449)
    "COCART_JWT_DPOP": "off",
    "COCART_JWT_DPOP_ALGORITHMS": ("ES256", "EdDSA", "PS256", "RS256"),
    "COCART_JWT_DPOP_MAX_AGE": timedelta(seconds=60),
    "COCART_JWT_DPOP_NONCE": False,
}

#: The rate-limit keys, read again on every request.
LIMIT_KEYS = tuple(k for k in DEFAULTS if k.startswith(PREFIX + "LIMIT_"))
STORAGE_ERROR_MODES = ("fallback", "reject", "allow")
RATELIMIT_STRATEGIES = ("moving-window", "fixed-window", "sliding-window-counter")


@dataclass(frozen=True, slots=True)
class Settings:
    """The validated settings of one app, loaded once by ``init_app``.

    Durations are in whole seconds. See the configuration reference in the
    docs for what each field does; the names follow the config keys.
    """

    keyring: Keyring = field(repr=False)
    access_token_expires: int
    refresh_token_expires: int
    session_max_age: int
    refresh_reuse_interval: int
    leeway: int
    issuer: str | None
    audience: tuple[str, ...] | None
    header_name: str
    header_type: str
    #: The WSGI environ key of ``header_name`` (``HTTP_AUTHORIZATION``).
    header_environ_key: str
    max_token_bytes: int
    #: Access tokens each process remembers as verified (0: none), see :mod:`.verified`.
    verified_token_cache_size: int
    revocation_check: bool
    max_sessions_per_user: int | None
    bind_ip: bool
    bind_user_agent: bool
    url_prefix: str
    database_uri: str = field(repr=False)  # may carry a password
    openapi_route: bool
    #: Seconds, not rounded: the extension's own engine waits at most this long.
    database_timeout: float
    ratelimit_enabled: bool
    ratelimit_storage_uri: str = field(repr=False)  # may carry a password
    ratelimit_strategy: str
    ratelimit_on_storage_error: str
    ratelimit_draft_headers: bool
    ratelimit_ipv6_prefix: int
    #: Cookie mode's cookies and CSRF checks; ``None`` when it is off.
    cookies: CookieSettings | None = None
    #: DPoP's proof checks (RFC 9449); ``None`` when ``COCART_JWT_DPOP`` is ``"off"``.
    dpop: DPoPSettings | None = None


def _duration(config: Mapping[str, Any], key: str) -> float:
    """The value of ``key`` in seconds: a ``timedelta`` or a number (not a bool)."""
    value = config[key]
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise ConfigurationError(f"{key} must be a datetime.timedelta or a number of seconds.")


def _seconds(config: Mapping[str, Any], key: str, *, allow_zero: bool = False) -> int:
    seconds = _duration(config, key)
    if not math.isfinite(seconds) or seconds < 0 or (seconds < 1 and not allow_zero):
        raise ConfigurationError(
            f"{key} must be a finite duration of at least one second; got {config[key]!r}."
        )
    return int(seconds)


def _timeout(config: Mapping[str, Any], key: str) -> float:
    """A duration in seconds, fractions kept: at least 0.1 s, at most a day."""
    seconds = _duration(config, key)
    if not math.isfinite(seconds) or not 0.1 <= seconds <= 86400:
        raise ConfigurationError(
            f"{key} must be a duration between 0.1 seconds and one day; got {config[key]!r}."
        )
    return seconds


def _flag(config: Mapping[str, Any], key: str) -> bool:
    value = config[key]
    if not isinstance(value, bool):
        raise ConfigurationError(f"{key} must be True or False; got {value!r}.")
    return value


def _text(config: Mapping[str, Any], key: str, *, optional: bool = False) -> str | None:
    value = config[key]
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"{key} must be a non-empty string; got {value!r}.")
    return value


def _choice(config: Mapping[str, Any], key: str, choices: tuple[str, ...]) -> str:
    value = config[key]
    if value not in choices:
        raise ConfigurationError(f"{key} must be one of {', '.join(choices)}; got {value!r}.")
    return str(value)


def check_limit(key: str, value: object) -> None:
    """Check that ``value`` is a Flask-Limiter limit string, ``""`` or ``None``.

    :raises ConfigurationError: if it cannot be parsed.
    """
    if value is None or value == "":
        return
    from limits import parse_many

    try:
        if not isinstance(value, str):
            raise TypeError
        parse_many(value)
    except (ValueError, TypeError) as exc:
        raise ConfigurationError(
            f"{key} must be a rate-limit string such as '10 per minute', '' or None; got {value!r}."
        ) from exc


def _ipv6_prefix(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 128:
        raise ConfigurationError(
            "COCART_JWT_RATELIMIT_IPV6_PREFIX must be an integer from 1 to 128 (the length "
            f"of the IPv6 network a client is counted by); got {value!r}."
        )
    return value


def _audience(value: object) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str) and value:
        return (value,)
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) and v for v in value):
        return tuple(value)
    raise ConfigurationError(
        "COCART_JWT_AUDIENCE must be a non-empty string, a list of them, or None."
    )


def _environ_key(header_name: str) -> str:
    """The WSGI environ key of an HTTP header (PEP 3333)."""
    key = header_name.upper().replace("-", "_")
    return key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + key


def _url_prefix(value: object) -> str:
    if not isinstance(value, str) or (value and not value.startswith("/")):
        raise ConfigurationError("COCART_JWT_URL_PREFIX must be a path such as '/auth'.")
    return value.rstrip("/")


def _database_uri(value: object, instance_path: str) -> str:
    if value is None:
        return "sqlite:///" + os.path.join(instance_path, "cocart_jwt.sqlite3")
    if not isinstance(value, str) or "://" not in value:
        raise ConfigurationError(
            "COCART_JWT_DATABASE_URI must be an SQLAlchemy URL such as "
            "'postgresql+psycopg://user@host/db'."
        )
    return value


def load_settings(config: Mapping[str, Any], instance_path: str) -> Settings:
    """Validate an app's ``COCART_JWT_*`` config and freeze it.

    :param config: the app's config; missing keys take their :data:`DEFAULTS`.
    :param instance_path: the app's instance folder, home of the default
        SQLite database.
    :raises ConfigurationError: for an unknown key or an invalid value.
    """
    unknown = sorted(k for k in config if k.startswith(PREFIX) and k not in DEFAULTS)
    if unknown:
        import difflib

        hints = []
        for key in unknown:
            close = difflib.get_close_matches(key, DEFAULTS, n=1)
            hints.append(f"{key} (did you mean {close[0]}?)" if close else key)
        raise ConfigurationError(f"Unknown configuration key: {', '.join(hints)}.")

    merged = {**DEFAULTS, **{k: v for k, v in config.items() if k.startswith(PREFIX)}}
    for key in LIMIT_KEYS:
        check_limit(key, merged[key])

    max_bytes = merged["COCART_JWT_MAX_TOKEN_BYTES"]
    if not isinstance(max_bytes, int) or isinstance(max_bytes, bool) or not max_bytes >= 256:
        raise ConfigurationError("COCART_JWT_MAX_TOKEN_BYTES must be an integer >= 256.")
    cache_size = merged["COCART_JWT_VERIFIED_TOKEN_CACHE_SIZE"]
    if not isinstance(cache_size, int) or isinstance(cache_size, bool) or cache_size < 0:
        raise ConfigurationError(
            "COCART_JWT_VERIFIED_TOKEN_CACHE_SIZE must be an integer >= 0 (0 turns it off)."
        )
    max_sessions = merged["COCART_JWT_MAX_SESSIONS_PER_USER"]
    if max_sessions is not None and (
        not isinstance(max_sessions, int) or isinstance(max_sessions, bool) or max_sessions < 1
    ):
        raise ConfigurationError(
            "COCART_JWT_MAX_SESSIONS_PER_USER must be None or an integer >= 1."
        )

    session_max_age = _seconds(merged, "COCART_JWT_SESSION_MAX_AGE")
    refresh_expires = _seconds(merged, "COCART_JWT_REFRESH_TOKEN_EXPIRES")
    header_name = _text(merged, "COCART_JWT_HEADER_NAME") or "Authorization"
    header_type = _text(merged, "COCART_JWT_HEADER_TYPE")
    if header_type is None or " " in header_type:
        raise ConfigurationError("COCART_JWT_HEADER_TYPE must be one word such as 'Bearer'.")
    url_prefix = _url_prefix(merged["COCART_JWT_URL_PREFIX"])
    leeway = _seconds(merged, "COCART_JWT_LEEWAY", allow_zero=True)

    return Settings(
        keyring=load_keyring(merged),
        access_token_expires=_seconds(merged, "COCART_JWT_ACCESS_TOKEN_EXPIRES"),
        refresh_token_expires=min(refresh_expires, session_max_age),
        session_max_age=session_max_age,
        refresh_reuse_interval=_seconds(
            merged, "COCART_JWT_REFRESH_REUSE_INTERVAL", allow_zero=True
        ),
        leeway=leeway,
        issuer=_text(merged, "COCART_JWT_ISSUER", optional=True),
        audience=_audience(merged["COCART_JWT_AUDIENCE"]),
        header_name=header_name,
        header_type=header_type,
        header_environ_key=_environ_key(header_name),
        max_token_bytes=max_bytes,
        verified_token_cache_size=cache_size,
        revocation_check=_flag(merged, "COCART_JWT_REVOCATION_CHECK"),
        max_sessions_per_user=max_sessions,
        bind_ip=_flag(merged, "COCART_JWT_BIND_IP"),
        bind_user_agent=_flag(merged, "COCART_JWT_BIND_USER_AGENT"),
        url_prefix=url_prefix,
        database_uri=_database_uri(merged["COCART_JWT_DATABASE_URI"], instance_path),
        openapi_route=_flag(merged, "COCART_JWT_OPENAPI_ROUTE"),
        database_timeout=_timeout(merged, "COCART_JWT_DATABASE_TIMEOUT"),
        ratelimit_enabled=_flag(merged, "COCART_JWT_RATELIMIT_ENABLED"),
        ratelimit_storage_uri=_text(merged, "COCART_JWT_RATELIMIT_STORAGE_URI") or "memory://",
        ratelimit_strategy=_choice(merged, "COCART_JWT_RATELIMIT_STRATEGY", RATELIMIT_STRATEGIES),
        ratelimit_on_storage_error=_choice(
            merged, "COCART_JWT_RATELIMIT_ON_STORAGE_ERROR", STORAGE_ERROR_MODES
        ),
        ratelimit_draft_headers=_flag(merged, "COCART_JWT_RATELIMIT_DRAFT_HEADERS"),
        ratelimit_ipv6_prefix=_ipv6_prefix(merged["COCART_JWT_RATELIMIT_IPV6_PREFIX"]),
        cookies=load_cookie_settings(merged, url_prefix),
        dpop=load_dpop_settings(merged, leeway),
    )

"""Cookie mode's configuration keys: defaults, and every mistake a ConfigurationError."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask

from flask_cocart_jwt import ConfigurationError
from flask_cocart_jwt.config import DEFAULTS, load_settings
from flask_cocart_jwt.cookie_settings import canonical_origin
from tests.conftest import SECRET

MakeApp = Callable[..., Flask]
ON = {"COCART_JWT_COOKIE_MODE": True}


def test_defaults_follow_the_spec(tmp_path: Any) -> None:
    assert {k: v for k, v in DEFAULTS.items() if "COOKIE" in k or "CSRF" in k} == {
        "COCART_JWT_COOKIE_MODE": False,
        "COCART_JWT_REFRESH_COOKIE_NAME": None,
        "COCART_JWT_CSRF_COOKIE_NAME": "cocart_csrf",
        "COCART_JWT_CSRF_HEADER_NAME": "X-CSRF-Token",
        "COCART_JWT_CSRF_TRUSTED_ORIGINS": (),
        "COCART_JWT_COOKIE_SECURE": True,
        "COCART_JWT_COOKIE_SAMESITE": "Strict",
        "COCART_JWT_COOKIE_DOMAIN": None,
        "COCART_JWT_ACCESS_COOKIE": False,
    }
    assert load_settings({"COCART_JWT_SECRET_KEY": SECRET}, str(tmp_path)).cookies is None
    cookies = load_settings({"COCART_JWT_SECRET_KEY": SECRET, **ON}, str(tmp_path)).cookies
    assert cookies is not None
    assert (cookies.refresh_name, cookies.csrf_name, cookies.access_name) == (
        "__Secure-cocart_rt",
        "cocart_csrf",
        None,
    )
    assert (cookies.secure, cookies.samesite, cookies.domain) == (True, "Strict", None)
    assert (cookies.refresh_path, cookies.csrf_environ_key) == ("/auth", "HTTP_X_CSRF_TOKEN")


def test_names_without_secure(tmp_path: Any) -> None:
    config = {"COCART_JWT_SECRET_KEY": SECRET, **ON, "COCART_JWT_ACCESS_COOKIE": True}
    cookies = load_settings({**config, "COCART_JWT_COOKIE_SECURE": False}, str(tmp_path)).cookies
    assert cookies is not None
    assert (cookies.refresh_name, cookies.access_name) == ("cocart_rt", "cocart_at")
    cookies = load_settings(config, str(tmp_path)).cookies
    assert cookies is not None
    assert cookies.access_name == "__Secure-cocart_at"


def test_refresh_cookie_path_follows_the_url_prefix(tmp_path: Any) -> None:
    for prefix, path in [("/api/auth/", "/api/auth"), ("", "/")]:
        config = {"COCART_JWT_SECRET_KEY": SECRET, **ON, "COCART_JWT_URL_PREFIX": prefix}
        cookies = load_settings(config, str(tmp_path)).cookies
        assert cookies is not None
        assert cookies.refresh_path == path


@pytest.mark.parametrize("mode", [True, False])
@pytest.mark.parametrize(
    ("config", "fix"),
    [
        # SameSite=None without Secure: browsers drop the cookie.
        (
            {"COCART_JWT_COOKIE_SAMESITE": "None", "COCART_JWT_COOKIE_SECURE": False},
            "needs COCART_JWT_COOKIE_SECURE = True",
        ),
        ({"COCART_JWT_COOKIE_SAMESITE": "strict"}, "'Strict', 'Lax' or 'None'"),
        ({"COCART_JWT_COOKIE_SAMESITE": None}, "'Strict', 'Lax' or 'None'"),
        ({"COCART_JWT_COOKIE_SECURE": "yes"}, "COCART_JWT_COOKIE_SECURE must be True or False"),
        ({"COCART_JWT_ACCESS_COOKIE": 1}, "COCART_JWT_ACCESS_COOKIE must be True or False"),
        # Origins: not scheme://host[:port] as a browser sends it.
        (
            {"COCART_JWT_CSRF_TRUSTED_ORIGINS": ("https://shop.example/",)},
            "write 'https://shop.example/' as 'https://shop.example'",
        ),
        (
            {"COCART_JWT_CSRF_TRUSTED_ORIGINS": ["https://Shop.Example:443"]},
            "as 'https://shop.example'",
        ),
        (
            {"COCART_JWT_CSRF_TRUSTED_ORIGINS": ("https://shop.example/app",)},
            "is not an origin. Write scheme://host",
        ),
        ({"COCART_JWT_CSRF_TRUSTED_ORIGINS": ("shop.example",)}, "is not an origin"),
        ({"COCART_JWT_CSRF_TRUSTED_ORIGINS": ("null",)}, "is not an origin"),
        ({"COCART_JWT_CSRF_TRUSTED_ORIGINS": ("*",)}, "is not an origin"),
        ({"COCART_JWT_CSRF_TRUSTED_ORIGINS": ("ftp://shop.example",)}, "is not an origin"),
        ({"COCART_JWT_CSRF_TRUSTED_ORIGINS": ("https://u:p@shop.example",)}, "is not an origin"),
        ({"COCART_JWT_CSRF_TRUSTED_ORIGINS": ("https://shop.example?",)}, "is not an origin"),
        ({"COCART_JWT_CSRF_TRUSTED_ORIGINS": ("https://shop.example:99999",)}, "not an origin"),
        ({"COCART_JWT_CSRF_TRUSTED_ORIGINS": (5,)}, "is not an origin"),
        ({"COCART_JWT_CSRF_TRUSTED_ORIGINS": "https://shop.example"}, "a list or tuple"),
        ({"COCART_JWT_CSRF_TRUSTED_ORIGINS": None}, "a list or tuple"),
        # Names.
        ({"COCART_JWT_REFRESH_COOKIE_NAME": "rt token"}, "COCART_JWT_REFRESH_COOKIE_NAME"),
        ({"COCART_JWT_REFRESH_COOKIE_NAME": ""}, "COCART_JWT_REFRESH_COOKIE_NAME"),
        ({"COCART_JWT_CSRF_COOKIE_NAME": "a;b"}, "COCART_JWT_CSRF_COOKIE_NAME"),
        ({"COCART_JWT_CSRF_COOKIE_NAME": None}, "COCART_JWT_CSRF_COOKIE_NAME"),
        ({"COCART_JWT_CSRF_HEADER_NAME": "X CSRF"}, "COCART_JWT_CSRF_HEADER_NAME"),
        ({"COCART_JWT_CSRF_HEADER_NAME": "Authorization"}, "a header with another use"),
        ({"COCART_JWT_CSRF_HEADER_NAME": "content-type"}, "a header with another use"),
        (
            {"COCART_JWT_HEADER_NAME": "X-Api-Token", "COCART_JWT_CSRF_HEADER_NAME": "X-API-Token"},
            "a header with another use",
        ),
        ({"COCART_JWT_CSRF_COOKIE_NAME": "__Secure-cocart_rt"}, "must differ"),
        (
            {"COCART_JWT_ACCESS_COOKIE": True, "COCART_JWT_CSRF_COOKIE_NAME": "__Secure-cocart_at"},
            "must differ",
        ),
        # Prefixed names: the browser's rules for __Secure- and __Host-.
        (
            {"COCART_JWT_REFRESH_COOKIE_NAME": "__Secure-rt", "COCART_JWT_COOKIE_SECURE": False},
            "without Secure",
        ),
        ({"COCART_JWT_REFRESH_COOKIE_NAME": "__Host-rt"}, "a __Host- cookie needs Path=/"),
        (
            {"COCART_JWT_CSRF_COOKIE_NAME": "__Host-csrf", "COCART_JWT_COOKIE_DOMAIN": "x.example"},
            "a __Host- cookie needs Path=/ and no Domain",
        ),
        # Domain.
        ({"COCART_JWT_COOKIE_DOMAIN": "https://shop.example"}, "COCART_JWT_COOKIE_DOMAIN"),
        ({"COCART_JWT_COOKIE_DOMAIN": "shop.example:443"}, "COCART_JWT_COOKIE_DOMAIN"),
        ({"COCART_JWT_COOKIE_DOMAIN": ""}, "COCART_JWT_COOKIE_DOMAIN"),
        ({"COCART_JWT_COOKIE_DOMAIN": 5}, "COCART_JWT_COOKIE_DOMAIN"),
    ],
    ids=repr,
)
def test_mistakes_fail_at_init_app(
    make_app: MakeApp, config: dict[str, Any], fix: str, mode: bool
) -> None:
    """Checked whether cookie mode is on or not: no surprise on the day it is switched on."""
    with pytest.raises(ConfigurationError, match=_escaped(fix)):
        make_app(COCART_JWT_COOKIE_MODE=mode, **config)


def _escaped(text: str) -> str:
    return re.escape(text)


def test_access_cookie_needs_cookie_mode(make_app: MakeApp) -> None:
    with pytest.raises(ConfigurationError, match="COCART_JWT_ACCESS_COOKIE needs COCART_JWT_COO"):
        make_app(COCART_JWT_ACCESS_COOKIE=True)


@pytest.mark.parametrize("mode", [True, False])
def test_cookie_mode_must_be_a_flag(make_app: MakeApp, mode: bool) -> None:
    with pytest.raises(ConfigurationError, match="COCART_JWT_COOKIE_MODE must be True or False"):
        make_app(COCART_JWT_COOKIE_MODE="true" if mode else 0)


def test_good_values(make_app: MakeApp, tmp_path: Any) -> None:
    config = {
        "COCART_JWT_SECRET_KEY": SECRET,
        **ON,
        "COCART_JWT_ACCESS_COOKIE": True,
        "COCART_JWT_REFRESH_COOKIE_NAME": "__Host-rt",
        "COCART_JWT_URL_PREFIX": "",
        "COCART_JWT_CSRF_COOKIE_NAME": "__Host-csrf",
        "COCART_JWT_CSRF_HEADER_NAME": "X-XSRF-TOKEN",
        "COCART_JWT_CSRF_TRUSTED_ORIGINS": [
            "https://shop.example",
            "http://localhost:3000",
            "http://[::1]:8080",
        ],
        "COCART_JWT_COOKIE_SAMESITE": "None",
    }
    cookies = load_settings(config, str(tmp_path)).cookies
    assert cookies is not None
    assert cookies.trusted_origins == frozenset(config["COCART_JWT_CSRF_TRUSTED_ORIGINS"])
    assert cookies.csrf_environ_key == "HTTP_X_XSRF_TOKEN"
    assert cookies.refresh_path == "/"
    make_app(**{k: v for k, v in config.items() if k != "COCART_JWT_SECRET_KEY"})
    domain = load_settings(
        {"COCART_JWT_SECRET_KEY": SECRET, **ON, "COCART_JWT_COOKIE_DOMAIN": "shop.example"},
        str(tmp_path),
    ).cookies
    assert domain is not None
    assert domain.domain == "shop.example"


@pytest.mark.parametrize(
    ("value", "origin"),
    [
        ("https://shop.example", "https://shop.example"),
        ("HTTPS://SHOP.EXAMPLE", "https://shop.example"),
        ("https://shop.example:443", "https://shop.example"),
        ("http://shop.example:80", "http://shop.example"),
        ("http://localhost:5000", "http://localhost:5000"),
        ("http://[::1]:5000", "http://[::1]:5000"),
        ("https://shop.example/", None),
        ("https://shop.example#x", None),
        ("null", None),
        ("https://:443", None),
        ("http://host:port", None),
    ],
)
def test_canonical_origin(value: str, origin: str | None) -> None:
    assert canonical_origin(value) == origin

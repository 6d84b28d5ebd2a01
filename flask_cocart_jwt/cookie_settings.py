"""The settings of cookie mode (``COCART_JWT_COOKIE_MODE``), validated once.

:func:`load_cookie_settings` reads the cookie and CSRF keys of an app's
merged configuration (:mod:`flask_cocart_jwt.config` holds their defaults)
and returns a frozen :class:`CookieSettings`, or ``None`` when cookie mode is
off. The keys are checked whether cookie mode is on or not, so that a mistake
fails at start-up and not on the day cookie mode is switched on. Every
:class:`ConfigurationError` says how to fix the value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from .exceptions import ConfigurationError

#: RFC 6265 cookie names and RFC 9110 header names: a ``token``.
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
#: A cookie ``Domain``: a host name, optionally with a leading dot.
_DOMAIN = re.compile(r"\.?[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)*")
_SAMESITE = ("Strict", "Lax", "None")
#: Headers the CSRF header cannot be (besides ``COCART_JWT_HEADER_NAME``).
_RESERVED_HEADERS = frozenset(
    {"authorization", "content-length", "content-type", "cookie", "host", "origin"}
)
_DEFAULT_PORTS = {"http": 80, "https": 443}
#: The name of the access cookie (``COCART_JWT_ACCESS_COOKIE``), Secure or not.
ACCESS_COOKIE_NAMES = ("__Secure-cocart_at", "cocart_at")


@dataclass(frozen=True, slots=True)
class CookieSettings:
    """How cookie mode sets and checks its cookies.

    Built by :func:`load_cookie_settings` only when ``COCART_JWT_COOKIE_MODE``
    is on; the names follow the configuration keys.
    """

    refresh_name: str
    #: The access cookie's name; ``None`` unless ``COCART_JWT_ACCESS_COOKIE``.
    access_name: str | None
    csrf_name: str
    csrf_header: str
    #: The WSGI environ key of ``csrf_header`` (``HTTP_X_CSRF_TOKEN``).
    csrf_environ_key: str
    trusted_origins: frozenset[str]
    secure: bool
    samesite: str
    domain: str | None
    #: The refresh cookie's ``Path``: the URL prefix, or ``/`` without one.
    refresh_path: str


def canonical_origin(value: str) -> str | None:
    """``value`` serialised as a browser sends ``Origin``, or ``None``.

    ``scheme://host[:port]`` with a lower-case scheme and host and no default
    port; anything with a path, query, fragment or user info is not an origin.
    """
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = parts.hostname
    if (
        scheme not in _DEFAULT_PORTS
        or not host
        or parts.path
        or parts.query
        or parts.fragment
        or "?" in value
        or "#" in value
        or parts.username is not None
        or parts.password is not None
    ):
        return None
    if ":" in host:
        host = f"[{host}]"
    if port is None or port == _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def _trusted_origins(value: object) -> frozenset[str]:
    key = "COCART_JWT_CSRF_TRUSTED_ORIGINS"
    if isinstance(value, str) or not isinstance(value, (list, tuple, set, frozenset)):
        raise ConfigurationError(
            f"{key} must be a list or tuple of origins such as ('https://shop.example',); "
            f"got {value!r}."
        )
    origins = set()
    for origin in value:
        canonical = canonical_origin(origin) if isinstance(origin, str) else None
        if canonical is None and isinstance(origin, str) and origin.endswith("/"):
            canonical = canonical_origin(origin.rstrip("/"))  # the usual slip
        if canonical is None:
            raise ConfigurationError(
                f"{key}: {origin!r} is not an origin. Write scheme://host[:port] with no "
                "path, such as 'https://shop.example' or 'http://localhost:3000'."
            )
        if canonical != origin:
            raise ConfigurationError(
                f"{key}: write {origin!r} as {canonical!r}, the form browsers send in Origin."
            )
        origins.add(origin)
    return frozenset(origins)


def _name(config: Mapping[str, Any], key: str, what: str) -> str:
    value = config[key]
    if not isinstance(value, str) or not _TOKEN.fullmatch(value):
        raise ConfigurationError(
            f"{key} must be a {what} made of letters, digits and !#$%&'*+-.^_`|~; got {value!r}."
        )
    return value


def _check_prefix(key: str, name: str, *, secure: bool, path: str, domain: str | None) -> None:
    """The rules browsers apply to ``__Secure-`` and ``__Host-`` cookie names."""
    if name.startswith(("__Secure-", "__Host-")) and not secure:
        raise ConfigurationError(
            f"{key}: browsers drop a {name.split('-')[0]}- cookie without Secure; "
            "set COCART_JWT_COOKIE_SECURE = True or choose another name."
        )
    if name.startswith("__Host-") and (path != "/" or domain is not None):
        raise ConfigurationError(
            f"{key}: a __Host- cookie needs Path=/ and no Domain, but this one has "
            f"Path={path} and Domain={domain}; choose a name without __Host-."
        )


def _flag(config: Mapping[str, Any], key: str) -> bool:
    value = config[key]
    if not isinstance(value, bool):
        raise ConfigurationError(f"{key} must be True or False; got {value!r}.")
    return value


def load_cookie_settings(config: Mapping[str, Any], url_prefix: str) -> CookieSettings | None:
    """Check the cookie-mode keys of ``config``; their settings, or ``None`` when off.

    :param config: the merged ``COCART_JWT_*`` configuration.
    :param url_prefix: the validated URL prefix, the refresh cookie's ``Path``.
    :raises ConfigurationError: an ill-typed or contradictory value.
    """
    mode = _flag(config, "COCART_JWT_COOKIE_MODE")
    access = _flag(config, "COCART_JWT_ACCESS_COOKIE")
    secure = _flag(config, "COCART_JWT_COOKIE_SECURE")
    samesite = config["COCART_JWT_COOKIE_SAMESITE"]
    if samesite not in _SAMESITE:
        raise ConfigurationError(
            f"COCART_JWT_COOKIE_SAMESITE must be 'Strict', 'Lax' or 'None'; got {samesite!r}."
        )
    if samesite == "None" and not secure:
        raise ConfigurationError(
            "COCART_JWT_COOKIE_SAMESITE = 'None' needs COCART_JWT_COOKIE_SECURE = True: "
            "browsers refuse SameSite=None cookies without Secure."
        )
    domain = config["COCART_JWT_COOKIE_DOMAIN"]
    if domain is not None and (not isinstance(domain, str) or not _DOMAIN.fullmatch(domain)):
        raise ConfigurationError(
            "COCART_JWT_COOKIE_DOMAIN must be None (host-only cookies) or a domain such as "
            f"'shop.example', without scheme, port or path; got {domain!r}."
        )
    refresh_name = config["COCART_JWT_REFRESH_COOKIE_NAME"]
    if refresh_name is None:
        refresh_name = "__Secure-cocart_rt" if secure else "cocart_rt"
    else:
        refresh_name = _name(config, "COCART_JWT_REFRESH_COOKIE_NAME", "cookie name")
    csrf_name = _name(config, "COCART_JWT_CSRF_COOKIE_NAME", "cookie name")
    csrf_header = _name(config, "COCART_JWT_CSRF_HEADER_NAME", "header name")
    reserved = {*_RESERVED_HEADERS, str(config["COCART_JWT_HEADER_NAME"]).lower()}
    if csrf_header.lower() in reserved:
        raise ConfigurationError(
            f"COCART_JWT_CSRF_HEADER_NAME cannot be {csrf_header!r}, a header with another "
            "use; keep the default 'X-CSRF-Token' or choose another name."
        )
    path = url_prefix or "/"
    _check_prefix(
        "COCART_JWT_REFRESH_COOKIE_NAME", refresh_name, secure=secure, path=path, domain=domain
    )
    _check_prefix("COCART_JWT_CSRF_COOKIE_NAME", csrf_name, secure=secure, path="/", domain=domain)
    access_name = ACCESS_COOKIE_NAMES[0 if secure else 1] if access else None
    names = [refresh_name, csrf_name, access_name or ""]
    if len(set(names)) != len(names):
        raise ConfigurationError(
            "COCART_JWT_REFRESH_COOKIE_NAME and COCART_JWT_CSRF_COOKIE_NAME must differ "
            f"from each other and from the access cookie ({ACCESS_COOKIE_NAMES[0]} or "
            f"{ACCESS_COOKIE_NAMES[1]})."
        )
    trusted = _trusted_origins(config["COCART_JWT_CSRF_TRUSTED_ORIGINS"])
    if access and not mode:
        raise ConfigurationError(
            "COCART_JWT_ACCESS_COOKIE needs COCART_JWT_COOKIE_MODE = True: the access "
            "cookie is set by the cookie-mode login and refresh."
        )
    if not mode:
        return None
    return CookieSettings(
        refresh_name=refresh_name,
        access_name=access_name,
        csrf_name=csrf_name,
        csrf_header=csrf_header,
        csrf_environ_key="HTTP_" + csrf_header.upper().replace("-", "_"),
        trusted_origins=trusted,
        secure=secure,
        samesite=samesite,
        domain=domain,
        refresh_path=path,
    )

"""Rate limits on the token routes, counted with Flask-Limiter's engine, ``limits``.

Each limited request hits one or more limits of the current app, each a
*scope* (``"refresh_per_ip"``, ``"validate_per_token"``...) whose limit string
is read from ``app.config["COCART_JWT_LIMIT_<SCOPE>"]`` at request time, so it
can be changed on a running app; ``""`` or ``None`` turns that limit off.

Keys are namespaced by the URL prefix of the token routes, so that several
processes or apps sharing one Redis and the same prefix enforce one global
limit. Per-IP keys use ``request.remote_addr`` only: behind a proxy, wrap the
app in :class:`werkzeug.middleware.proxy_fix.ProxyFix`; ``X-Forwarded-For`` is
never read here. An IPv6 client is counted by its network
(``COCART_JWT_RATELIMIT_IPV6_PREFIX``, see :mod:`.addresses`). Per-token and
per-username keys are a keyed hash (HMAC), never the token, its stored hash or
the username; usernames are compared stripped and case-folded, so ``Alice`` and
``alice`` share one failure count. Failed logins are counted per username and
client, and per username across all clients under a higher ceiling, so that a
stranger cannot lock a user out. An access token is counted by its verified
``jti``, so every spelling of one token shares one count.

While the storage is unreachable, :mod:`.storage_health` keeps one back-off
state for it per process and checks it again at most every second.

.. versionadded:: 0.1
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, cast

from flask import Response, after_this_request, current_app
from limits import RateLimitItem, parse_many
from limits.errors import ConfigurationError as LimitsConfigurationError
from limits.storage import MemoryStorage, Storage, storage_from_string
from limits.strategies import STRATEGIES, RateLimiter

from . import signals
from .addresses import client_key
from .config import DEFAULTS, LIMIT_KEYS, PREFIX, Settings
from .counting import Counter, counter_for
from .exceptions import ConfigurationError, RateLimited, ServiceUnavailable
from .forks import PerProcess
from .limit_headers import add_headers
from .request_state import RequestState, Usage, request_state
from .storage_health import PROBE_INTERVAL_MAX, StorageHealth

logger = logging.getLogger(__name__)

#: First element of every key, so that our counters never meet the app's own.
KEY_NAMESPACE = "cocart_jwt"
#: Seconds to wait for the storage before counting it as unreachable.
STORAGE_TIMEOUT = 0.5

_LIMIT_PREFIX = PREFIX + "LIMIT_"
#: scope -> (config key, default), e.g. "refresh_per_ip" -> COCART_JWT_LIMIT_REFRESH_PER_IP.
_SCOPES = {k[len(_LIMIT_PREFIX) :].lower(): (k, DEFAULTS[k]) for k in LIMIT_KEYS}
#: route -> its scopes, in the order of the config keys: "login" -> ("login_per_ip", ...).
_ROUTE_SCOPES = {
    route: tuple(scope for scope in _SCOPES if scope.partition("_")[0] == route)
    for route in {scope.partition("_")[0] for scope in _SCOPES}
}
#: The current app (the object behind the proxy).
_current_app = current_app._get_current_object  # type: ignore[attr-defined]
_REDIS_SCHEMES = ("redis", "rediss", "redis+unix", "valkey", "valkeys", "valkey+unix")


@lru_cache(maxsize=256)
def parse_limit(value: str) -> tuple[RateLimitItem, ...]:
    """The limits of a Flask-Limiter string such as ``"10/minute;100/hour"``.

    Cached by string, so a string is parsed once however often it is read.

    :raises ConfigurationError: the string cannot be parsed.
    """
    try:
        return tuple(parse_many(value))
    except ValueError as exc:
        raise ConfigurationError(
            f"Invalid rate-limit string {value!r}; use e.g. '10 per minute', '' or None."
        ) from exc


class RateLimits:
    """The rate limiter of one app: storage, strategy and failure handling.

    Created by ``init_app`` when ``COCART_JWT_RATELIMIT_ENABLED`` is true.

    :param settings: the app's settings.
    :param limiter: a ``flask_limiter.Limiter`` whose storage to count in;
        without one, a storage is built from ``COCART_JWT_RATELIMIT_STORAGE_URI``.
    """

    def __init__(self, settings: Settings, limiter: Any = None) -> None:
        self.namespace = settings.url_prefix or "/"
        #: Limit strings found unparsable at request time, logged once each.
        self._invalid: set[str] = set()
        self.on_storage_error = settings.ratelimit_on_storage_error
        self.draft_headers = settings.ratelimit_draft_headers
        self.ipv6_prefix = settings.ratelimit_ipv6_prefix
        self._derive = settings.keyring.derive
        self._strategy = settings.ratelimit_strategy
        self._limiter = limiter
        self._primary: RateLimiter | None = None
        self._fallback: RateLimiter | None = None
        self._lock = threading.Lock()
        #: One back-off state for the primary storage, made afresh in each process.
        self._health = PerProcess(self._new_health)
        #: strategy -> how to hit it and read its window (see :mod:`.counting`).
        self._counters: dict[RateLimiter, Counter] = {}
        if limiter is None:
            self._primary = self._strategy_for(_own_storage(settings.ratelimit_storage_uri))

    # -- storage ----------------------------------------------------------

    def _strategy_for(self, storage: Storage) -> RateLimiter:
        try:
            return STRATEGIES[self._strategy](storage)
        except NotImplementedError as exc:
            raise ConfigurationError(
                f"The rate-limit storage {type(storage).__name__} does not support the "
                f"{self._strategy!r} strategy; set COCART_JWT_RATELIMIT_STRATEGY to "
                "'fixed-window'."
            ) from exc

    def primary(self) -> RateLimiter:
        """The strategy on the configured storage (the user's Limiter's, if given)."""
        if self._primary is None:
            with self._lock:
                if self._primary is None:
                    try:
                        storage = self._limiter.storage
                    except AssertionError:  # Flask-Limiter's check of init_app
                        storage = None
                    if storage is None:
                        raise RuntimeError(
                            "The Limiter given to CoCartJWT has no storage. "
                            "Did you forget to call limiter.init_app(app)?"
                        )
                    self._primary = self._strategy_for(storage)
        return self._primary

    def fallback(self) -> RateLimiter:
        """The per-process memory strategy used while the storage is down."""
        if self._fallback is None:
            with self._lock:
                if self._fallback is None:
                    self._fallback = self._strategy_for(MemoryStorage())
        return self._fallback

    def health(self) -> StorageHealth:
        """The back-off state of the primary storage in this process."""
        return self._health.value or self._health.get()

    def _new_health(self) -> StorageHealth:
        return StorageHealth(self._probe, on_down=self._log_down, on_up=self._log_up)

    def _probe(self) -> bool:
        """The cheap health check of the primary storage (Redis: ``PING``)."""
        try:
            return bool(self.primary().storage.check())
        except NotImplementedError:  # a storage without one: let the next count find out
            return True

    def _log_down(self, error: Exception) -> None:
        current_app.logger.warning(
            "Rate-limit storage unreachable (%s); on_storage_error=%r until it answers "
            "a health check (one at most every %.0f s).",
            type(error).__name__,
            self.on_storage_error,
            PROBE_INTERVAL_MAX,
        )

    def _log_up(self, outage: float) -> None:
        current_app.logger.warning(
            "Rate-limit storage reachable again after %.1f s; counting in it again.", outage
        )

    def degraded(self) -> RateLimiter | None:
        """What to count with while the storage is down: the fallback, or nothing.

        :raises ServiceUnavailable: in ``"reject"`` mode, with ``Retry-After``
            the time to the next health check (at least 1 s).
        """
        if self.on_storage_error == "fallback":
            return self.fallback()
        if self.on_storage_error == "reject":
            wait = max(1, math.ceil(self.health().retry_after()))
            raise ServiceUnavailable(retry_after=wait)
        return None

    # -- counting ---------------------------------------------------------

    def key(self, label: str, secret: str) -> str:
        """A keyed hash of ``secret`` for use in a rate-limit key."""
        return self._derive(label, secret.encode("utf-8", "surrogatepass")).hex()[:32]

    def configured(self, scope: str) -> bool:
        """Whether ``scope`` has a limit in the app's config right now."""
        key, default = _SCOPES[scope]
        # The app itself, not the proxy: this runs on every protected request.
        return bool(_current_app().config.get(key, default))

    def apply(self, scope: str, subject: str, *, consume: bool = True) -> None:
        """Hit (or, with ``consume=False``, only check) the limits of ``scope``.

        :param scope: e.g. ``"refresh_per_ip"``; its limit string is
            ``COCART_JWT_LIMIT_REFRESH_PER_IP``.
        :param subject: what is counted: an IP or a keyed hash.
        :raises RateLimited: a limit is exceeded.
        :raises ServiceUnavailable: the storage is down in ``"reject"`` mode.
        """
        key, default = _SCOPES[scope]
        value = current_app.config.get(key, default)
        if not value:
            return
        items = self._items(key, value)
        if not items:
            return
        if self._limiter is not None and self._limiter.enabled is False:
            return  # a user's Limiter switched off (RATELIMIT_ENABLED = False) switches ours off
        health = self.health()
        epoch = health.admit()  # None: the storage is down, and no health check is due
        limiter = self.degraded() if epoch is None else self.primary()
        if limiter is None:
            return
        try:
            breached = self._count(limiter, items, scope, subject, consume)
        except Exception as exc:  # the storage failed; nothing else runs in _count
            if epoch is None:  # the fallback itself
                raise
            health.failed(exc, epoch)
            degraded = self.degraded()
            breached = None
            if degraded is not None:
                breached = self._count(degraded, items, scope, subject, consume)
        if breached is not None:
            # Outside the try: a failing signal receiver is not a storage outage.
            signals.rate_limit_exceeded.send(
                current_app._get_current_object(),  # type: ignore[attr-defined]
                limit=value,
                scope=scope,
            )
            raise RateLimited(retry_after=breached.retry_after(time.time()), scope=scope)

    def _items(self, key: str, value: str) -> tuple[RateLimitItem, ...]:
        """The limits of ``value``; none (the limit is skipped) if it cannot be parsed.

        The strings are checked at ``init_app``; one changed on the running
        app to something unparsable is a configuration error, logged once,
        and not a reason to refuse (or fail) every request.
        """
        try:
            return parse_limit(value)
        except ConfigurationError as exc:
            if value not in self._invalid:
                self._invalid.add(value)
                logger.error("%s is skipped: %s", key, exc)
            return ()

    def _count(
        self,
        limiter: RateLimiter,
        items: tuple[RateLimitItem, ...],
        scope: str,
        subject: str,
        consume: bool,
    ) -> Usage | None:
        state = request_state(create=True)
        assert state is not None
        if not state.usages:
            # The first limit this request counts: its response gets the
            # headers (only requests that count a limit pay for the hook).
            after_this_request(self.add_headers)
        if self.draft_headers and scope not in state.policies:
            self._declare_route(state, scope)
        usages = state.usages
        identifiers = (KEY_NAMESPACE, self.namespace, scope, subject)
        count = self._counters.get(limiter)
        if count is None:
            count = self._counters.setdefault(limiter, counter_for(limiter))
        for index, item in enumerate(items):
            allowed, stats = count(item, identifiers, consume)
            policy = policy_name(scope, index)
            usage = Usage(
                policy,
                item.amount,
                item.get_expiry(),
                max(0, stats.remaining),
                stats.reset_time,
                not allowed,
            )
            usages[policy] = usage
            if not allowed:
                return usage
        return None

    def _declare_route(self, state: RequestState, scope: str) -> None:
        """Record every limit of ``scope``'s route for the ``RateLimit-Policy`` field.

        A request stops counting at the first limit it breaches, but its
        answer lists the route's policies as every other answer does.
        """
        config = current_app.config
        for each in _ROUTE_SCOPES[scope.partition("_")[0]]:
            key, default = _SCOPES[each]
            value = config.get(key, default)
            for index, item in enumerate(self._items(key, value) if value else ()):
                state.policies[policy_name(each, index)] = (item.amount, item.get_expiry())

    # -- the token routes' limits --------------------------------------------

    def client(self, ip: str | None) -> str:
        """The per-IP key of the client at ``ip``: IPv6 grouped by prefix."""
        return client_key(ip, self.ipv6_prefix)

    def limit_ip(self, route: str, ip: str | None) -> None:
        """Hit the per-IP limit of ``route`` (``"login"``, ``"refresh"``...)."""
        self.apply(route + "_per_ip", self.client(ip))

    def limit_token(self, route: str, token: str) -> None:
        """Hit the per-token limit of ``route`` for the opaque refresh token ``token``.

        A refresh token is looked up by its exact string, so its spelling is
        its identity: the key is a keyed hash of the string.
        """
        scope = route + "_per_token"
        if self.configured(scope):
            self.apply(scope, self.key("ratelimit", token))

    def limit_access_token(self, route: str, claims: Mapping[str, Any]) -> None:
        """Hit the per-token limit of ``route`` for the verified access token of ``claims``.

        The key is a keyed hash of the token's ``jti``, not of its string:
        every spelling of one token (an ECDSA signature's ``s`` replaced by
        ``n - s`` verifies too) shares one counter.
        """
        scope = route + "_per_token"
        # Check the limit is set before hashing: the protected-view limit is opt-in.
        if self.configured(scope):
            self.apply(scope, self.key("ratelimit-jti", str(claims["jti"])))

    def check_login_username(self, username: str, ip: str | None) -> None:
        """Refuse a login for ``username`` while its failed attempts are at a limit.

        The failures of ``username`` from the client at ``ip``, and from every
        client (the global ceiling), are checked without being counted.
        """
        for scope, subject in self._login_failure_keys(username, ip):
            self.apply(scope, subject, consume=False)

    def record_login_failure(self, username: str, ip: str | None) -> None:
        """Count a failed login for ``username`` from the client at ``ip``."""
        for scope, subject in self._login_failure_keys(username, ip):
            # A concurrent failure may breach the limit here: this attempt has
            # failed already, and the next one is refused.
            with contextlib.suppress(RateLimited):
                self.apply(scope, subject)

    def _login_failure_keys(self, username: str, ip: str | None) -> tuple[tuple[str, str], ...]:
        user = self.key("ratelimit-username", username.strip().casefold())
        return (
            ("login_failures_per_username", f"{user}@{self.client(ip)}"),
            ("login_failures_per_username_global", user),
        )

    def add_headers(self, response: Response) -> Response:
        """Add the headers of the limits the request hit (an ``after_this_request`` hook)."""
        return add_headers(response, draft=self.draft_headers)


def policy_name(scope: str, index: int) -> str:
    """The name of the ``index``-th limit of ``scope`` in the headers: ``scope``, ``scope_1``..."""
    return scope if index == 0 else f"{scope}_{index}"


def _own_storage(uri: str) -> Storage:
    scheme = uri.partition("://")[0]
    options: dict[str, Any] = {}
    if scheme in _REDIS_SCHEMES:
        options = {"socket_timeout": STORAGE_TIMEOUT, "socket_connect_timeout": STORAGE_TIMEOUT}
    try:
        storage = cast(Storage, storage_from_string(uri, wrap_exceptions=True, **options))
    except LimitsConfigurationError as exc:
        raise ConfigurationError(
            f"COCART_JWT_RATELIMIT_STORAGE_URI ({scheme}://...) cannot be used: {exc}. "
            "Use 'memory://' or 'redis://host:port/db' (pip install redis)."
        ) from exc
    return storage

"""The :class:`CoCartJWT` extension: ``init_app``, the callbacks and the Python API."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary

from flask import Blueprint, Flask, Response, current_app, has_request_context
from sqlalchemy import MetaData

from .binding import token_endpoint_jkt
from .callbacks import Callbacks
from .cli import cli_group
from .clients import Client
from .config import Settings, load_settings
from .database import close_session_quietly, embedded_engine
from .dpop import ProofChecker
from .exceptions import AuthError, ConfigurationError, ServiceUnavailable
from .limits import RateLimits
from .models import define_tables
from .push import Push
from .replay import ReplayCache
from .results import SessionInfo, TokenPair
from .revocation import RevocationView
from .service import EXTENSION_KEY, Service
from .store import Store
from .transport import request_client
from .views import create_blueprint
from .watch import watch_model

if TYPE_CHECKING:
    from flask_sqlalchemy import SQLAlchemy

#: Seconds added to the revocation view's memory for clock skew between hosts.
_CLOCK_SKEW = 60


class CoCartJWT(Callbacks):
    """Dual-token JWT authentication for a Flask app.

    ::

        cocart_jwt = CoCartJWT()

        def create_app():
            app = Flask(__name__)
            app.config["COCART_JWT_SECRET_KEY"] = os.environ["JWT_SECRET"]
            cocart_jwt.init_app(app)
            return app

    One instance serves any number of apps; what differs between them (the
    settings, the store, the revocation view, the rate limits) is a
    :class:`~flask_cocart_jwt.service.Service` per app, made by
    :meth:`init_app` and reached through :meth:`get_service`.

    :param app: initialise on this app at once.
    :param db: the app's ``flask_sqlalchemy.SQLAlchemy``; the token tables
        join its metadata. Without it the extension keeps its own database
        (``COCART_JWT_DATABASE_URI``, default an SQLite file in the instance
        folder) and creates its tables on first use.
    :param limiter: a ``flask_limiter.Limiter`` to count with; without it the
        extension uses one of its own, isolated from the app's other limits.
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        db: SQLAlchemy | None = None,
        limiter: Any = None,
    ) -> None:
        super().__init__()
        self.db = db
        self.limiter = limiter
        self._metadata = MetaData()
        self._services: WeakKeyDictionary[Flask, Service] = WeakKeyDictionary()
        if app is not None:
            self.init_app(app)

    # -- setup -----------------------------------------------------------

    def init_app(self, app: Flask) -> None:
        """Validate the app's configuration and register the token routes.

        :raises ConfigurationError: an unknown ``COCART_JWT_*`` key, a missing
            or weak key, an unsupported algorithm, or a second call for the
            same app.
        """
        if EXTENSION_KEY in app.extensions:
            raise ConfigurationError(
                "Flask-CoCart-JWT is already initialised on this app. "
                "Call init_app(app) once per app."
            )
        settings = load_settings(app.config, app.instance_path)
        if self.db is not None:
            if app.config.get("COCART_JWT_DATABASE_URI") is not None:
                raise ConfigurationError(
                    "COCART_JWT_DATABASE_URI is set but a db was given to CoCartJWT; "
                    "the token tables live in that db. Remove one of the two."
                )
            store = Store(
                define_tables(self.db.metadata),
                _engine_of(self.db, app),
                access_lifetime=settings.access_token_expires,
                legacy_access_lifetime=_legacy_access_lifetime(settings),
                announce=settings.revocation_check,
            )
        else:
            uri, timeout = settings.database_uri, settings.database_timeout
            store = Store(
                define_tables(self._metadata),
                lambda: embedded_engine(uri, timeout),
                embedded=True,
                access_lifetime=settings.access_token_expires,
                legacy_access_lifetime=_legacy_access_lifetime(settings),
                announce=settings.revocation_check,
            )
        revocations = None
        if settings.revocation_check:
            revocations = RevocationView(
                store,
                settings.access_token_expires,
                margin=settings.leeway + _CLOCK_SKEW,
                push=Push(lambda: store.engine, settings.ratelimit_storage_uri),
            )
        limits = RateLimits(settings, self.limiter) if settings.ratelimit_enabled else None
        dpop = None
        if settings.dpop is not None:
            # The replay cache lives in the rate-limit storage, limits on or off.
            replay = ReplayCache(limits or RateLimits(settings, self.limiter))
            dpop = ProofChecker(settings.dpop, settings.keyring, replay)
        service = Service(settings, store, revocations, limits, self, dpop)
        blueprint = create_blueprint(service)
        # Nothing below runs on the app's other routes: no app-wide request
        # hook, teardown or after_request (rate-limit headers are added by
        # the requests that counted a limit, see limits.py).
        _exempt_from_app_limiters(app, blueprint, self.limiter)
        self._services[app] = service
        app.extensions[EXTENSION_KEY] = self
        render = service.render_error if self.db is None else _releasing(self.db, service)
        app.register_error_handler(AuthError, render)
        app.register_blueprint(blueprint, url_prefix=settings.url_prefix or None)
        app.cli.add_command(cli_group)

    def get_service(self, app: Flask) -> Service:
        """The service of ``app``: its settings, store, limits and operations.

        :raises RuntimeError: this instance was not initialised on ``app``.

        .. versionadded:: 0.2
        """
        try:
            return self._services[app]
        except KeyError:
            raise RuntimeError(
                "This CoCartJWT instance is not initialised on the app "
                f"{app.name!r}. Did you forget to call init_app(app)?"
            ) from None

    @property
    def service(self) -> Service:
        """The service of the current app (see :meth:`get_service`).

        .. versionadded:: 0.2
        """
        return self.get_service(current_app._get_current_object())  # type: ignore[attr-defined]

    # -- the Python API ------------------------------------------------------

    def issue_tokens(self, user: Any, *, fresh: bool = True) -> TokenPair:
        """Open a session for ``user`` and return its first token pair.

        This is what ``POST /login`` does after the credentials check; use it
        after a sign-up or a third-party login. Outside a request the session
        records no client address or user agent.

        With ``COCART_JWT_DPOP``, a request that carries a valid ``DPoP``
        proof (made for its own method and URL) gets a pair bound to the
        proof's key, as a login would; with ``"required"``, a request without
        one is refused. Outside a request the pair is never bound.

        :param fresh: mark the access token as fresh (straight from a login).
        :raises InvalidDPoPProof: the request's proof is invalid, or missing
            with ``COCART_JWT_DPOP = "required"``.
        """
        service = self.service
        jkt = token_endpoint_jkt(service) if has_request_context() else None
        return service.issue(user, fresh=fresh, client=_client(), jkt=jkt)

    def refresh(self, refresh_token: object) -> TokenPair:
        """Rotate ``refresh_token`` and return the new pair (``POST /refresh-token``).

        Outside a request the client is unknown: with ``COCART_JWT_BIND_IP``
        or ``COCART_JWT_BIND_USER_AGENT`` the refresh is then refused.

        :raises AuthError: ``invalid_refresh_token``, ``refresh_token_expired``,
            ``refresh_token_reused`` or ``user_not_found``.
        """
        return self.service.refresh(refresh_token, _client())

    def revoke_session(
        self, session_id: str, reason: str = "revoked", *, identity: str | None = None
    ) -> bool:
        """Revoke one session: its refresh tokens and its access tokens.

        :param identity: only revoke if the session belongs to this user.
        :returns: whether a live session was revoked.
        """
        return self.service.revoke_session(session_id, reason, identity=identity)

    def revoke_user(self, identity: str, reason: str = "revoked") -> int:
        """Revoke every session of ``identity`` (log out everywhere).

        :returns: the number of sessions revoked.
        """
        return self.service.revoke_user(identity, reason)

    def revoke_refresh_token(self, token: str, *, identity: str | None = None) -> bool:
        """Revoke the session of a refresh token (log out).

        :param identity: only revoke if the token belongs to this user.
        :returns: whether a live session was revoked; ``False`` for an unknown
            or malformed token.
        """
        return self.service.revoke_refresh_token(token, identity=identity)

    def list_sessions(self, identity: str) -> list[SessionInfo]:
        """The live sessions of ``identity``, newest first."""
        return self.service.list_sessions(identity)

    def purge_expired(self, *, batch_size: int = 1000) -> int:
        """Delete sessions past their absolute expiry, with their refresh tokens.

        Run it from a scheduled job (``flask jwt purge``).

        :returns: the number of sessions deleted.
        """
        return sum(self.service.purge_expired_batches(batch_size=batch_size))

    def watch_user_model(
        self,
        model: type[Any],
        *,
        identity_attr: str = "id",
        revoke_on: tuple[str, ...] = ("password_hash", "email"),
        revoke_on_delete: bool = True,
    ) -> None:
        """Revoke a user's sessions when watched columns change or the row is deleted.

        :param model: the user's SQLAlchemy model class.
        :param identity_attr: the attribute whose ``str()`` is the identity.
        :param revoke_on: the attributes whose change logs the user out
            everywhere (password, email).
        :param revoke_on_delete: also revoke when the row is deleted.
        """
        watch_model(lambda: self.service, model, identity_attr, revoke_on, revoke_on_delete)


def _legacy_access_lifetime(settings: Settings) -> int:
    """The longest an access token issued by 0.1 is assumed to outlive its
    session's last use: its expiry was not recorded.

    A token issued at the last use (a login or a refresh) lived one access
    lifetime of the configuration of the time, and a retry of that refresh
    issues one up to the reuse interval later. That lifetime is unknown: it
    is assumed to be at most the refresh-token lifetime, or today's access
    lifetime if that is longer (see the 0.2 upgrade notes).
    """
    lifetime = max(settings.access_token_expires, settings.refresh_token_expires)
    return lifetime + settings.refresh_reuse_interval


def _client() -> Client:
    """The client of the current request; an unknown one outside a request."""
    return request_client() if has_request_context() else Client()


def _engine_of(db: SQLAlchemy, app: Flask) -> Callable[[], Any]:
    # A weak reference: the per-app service holding this must not keep the app alive.
    app_ref = weakref.ref(app)

    def engine() -> Any:
        alive = app_ref()
        if alive is None:
            raise RuntimeError("The app of this engine was garbage-collected.")
        with alive.app_context():
            return db.engine

    return engine


def _releasing(db: SQLAlchemy, service: Service) -> Callable[[AuthError], Response]:
    """The error handler of an app whose token tables live in the user's ``db``.

    A 503 (database unavailable) first closes the user's ``db.session``: its
    connection may have died during the request, and Flask-SQLAlchemy's
    teardown would roll it back over the dead socket and turn the 503 into a
    500. Done here, only when a 503 is rendered, rather than in a teardown
    that would run on every request of the app.
    """

    def render(error: AuthError) -> Response:
        if isinstance(error, ServiceUnavailable) and "sqlalchemy" in current_app.extensions:
            close_session_quietly(db.session)
        return service.render_error(error)

    return render


def _exempt_from_app_limiters(app: Flask, blueprint: Blueprint, limiter: Any) -> None:
    """Exempt the token routes from every Flask-Limiter of ``app``.

    They are counted by the extension's own limits, never twice. The
    limiters known now are exempted at once. One initialised on the app after
    ``init_app`` registers its own check after the hook installed here, which
    exempts it on the app's first request, before that check first counts,
    and then removes itself: Flask refuses new hooks (a Limiter's
    ``init_app`` included) once the app has handled a request, so no limiter
    can come later, and the app's requests pay nothing for this.
    """
    done: set[Any] = set()
    extensions = app.extensions  # not the app: its hooks must not keep it alive
    hooks = app.before_request_funcs

    def exempt_new_limiters() -> None:
        for new in set(extensions.get("limiter") or ()) - done:
            new.exempt(blueprint)
            done.add(new)

    def on_first_request() -> None:
        exempt_new_limiters()
        # A new list rather than list.remove(): Flask is iterating the old one.
        hooks[None] = [hook for hook in hooks.get(None, ()) if hook is not on_first_request]

    if limiter is not None:
        limiter.exempt(blueprint)
        done.add(limiter)
    exempt_new_limiters()
    app.before_request(on_first_request)

"""The :class:`CoCartJWT` extension: ``init_app`` and the Python API."""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary

from flask import Flask, Response, current_app, has_request_context, request
from sqlalchemy import MetaData

from . import signals
from .callbacks import Callbacks
from .cli import cli_group
from .config import load_settings
from .database import close_session_quietly, database_errors_as_503, embedded_engine
from .exceptions import AuthError, ConfigurationError, InvalidRefreshToken, UserNotFound
from .keys import b64url
from .limits import init_limits
from .models import define_tables
from .records import SessionInfo, TokenPair
from .refresh_tokens import looks_like_refresh_token
from .revocation import RevocationView
from .state import EXTENSION_KEY, AppState, current_extension
from .store import RefreshContext, Store
from .tokens import encode_access_token
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
        self.db = db
        self.limiter = limiter
        self._metadata = MetaData()
        self._states: WeakKeyDictionary[Flask, AppState] = WeakKeyDictionary()
        super().__init__()
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
            store = Store(define_tables(self.db.metadata), _engine_of(self.db, app))
        else:
            uri = settings.database_uri
            store = Store(
                define_tables(self._metadata),
                lambda: embedded_engine(uri),
                create_tables=True,
            )
        revocations = None
        if settings.revocation_check:
            relevance = settings.access_token_expires + settings.leeway + _CLOCK_SKEW
            revocations = RevocationView(store, relevance)
        blueprint = create_blueprint()
        limits = init_limits(app, settings, self.limiter, blueprint)
        state = AppState(settings, store, revocations, limits)
        self._states[app] = state
        app.extensions[EXTENSION_KEY] = self
        app.register_error_handler(AuthError, self._handle_auth_error)
        app.register_blueprint(blueprint, url_prefix=settings.url_prefix or None)
        if self.db is not None:
            app.teardown_appcontext(self._close_db_session)
        app.cli.add_command(cli_group)

    def _handle_auth_error(self, error: AuthError) -> Response:
        response = self._error_response_loader(error)
        challenge = response.headers.get("WWW-Authenticate", "")
        if challenge.startswith("Bearer "):
            # Name the scheme the app expects (COCART_JWT_HEADER_TYPE).
            scheme = current_extension()[1].settings.header_type
            if scheme != "Bearer":
                response.headers["WWW-Authenticate"] = scheme + challenge[6:]
        return response

    def _close_db_session(self, _exc: BaseException | None) -> None:
        # Before Flask-SQLAlchemy's own teardown: a connection lost mid-request
        # must not turn the 503 already rendered into a 500.
        if self.db is not None and "sqlalchemy" in current_app.extensions:
            close_session_quietly(self.db.session)

    # -- issuing and refreshing -------------------------------------------

    def _identity(self, user: Any) -> str:
        identity = self._user_identity_loader(user)
        if not isinstance(identity, str) or not identity or len(identity) > 255:
            raise TypeError("user_identity_loader must return a non-empty str of <= 255 chars.")
        return identity

    def _access_token(
        self,
        state: AppState,
        user: Any,
        identity: str,
        session_id: str,
        fresh: bool,
        now: int,
        not_after: int,
    ) -> tuple[str, int]:
        """A signed access token and its lifetime in seconds (capped at ``not_after``)."""
        claims = self._additional_claims_loader(user) if self._additional_claims_loader else None
        token, signed = encode_access_token(
            state.settings,
            identity=identity,
            session_id=session_id,
            fresh=fresh,
            now=now,
            additional_claims=claims,
            not_after=not_after,
        )
        return token, int(signed["exp"]) - now

    def issue_tokens(self, user: Any, *, fresh: bool = True) -> TokenPair:
        """Open a session for ``user`` and return its first token pair.

        This is what ``POST /login`` does after the credentials check; use it
        after a sign-up or a third-party login.

        :param fresh: mark the access token as fresh (straight from a login).
        """
        _, state = current_extension()
        settings = state.settings
        identity = self._identity(user)
        now = int(time.time())
        in_request = has_request_context()
        session_id, refresh, refresh_expires, evicted = state.store.create_session(
            identity,
            now=now,
            max_age=settings.session_max_age,
            idle_seconds=settings.refresh_token_expires,
            ip=request.remote_addr if in_request else None,
            user_agent=request.user_agent.string if in_request else None,
            max_sessions=settings.max_sessions_per_user,
        )
        if evicted:
            self._revoked(state, evicted, "max_sessions", now)
        access, expires_in = self._access_token(
            state, user, identity, session_id, fresh, now, now + settings.session_max_age
        )
        signals.tokens_issued.send(
            current_app._get_current_object(),  # type: ignore[attr-defined]
            identity=identity,
            session_id=session_id,
        )
        return TokenPair(
            token_type=settings.header_type,
            access_token=access,
            expires_in=expires_in,
            refresh_token=refresh,
            refresh_token_expires_in=refresh_expires - now,
            session_id=session_id,
        )

    def refresh(self, refresh_token: object) -> TokenPair:
        """Rotate ``refresh_token`` and return the new pair (``POST /refresh-token``).

        :raises AuthError: ``invalid_refresh_token``, ``refresh_token_expired``,
            ``refresh_token_reused`` or ``user_not_found``.
        """
        if not looks_like_refresh_token(refresh_token):
            raise InvalidRefreshToken
        assert isinstance(refresh_token, str)
        _, state = current_extension()
        settings = state.settings
        now = int(time.time())
        successor = "rt_" + b64url(
            settings.keyring.derive("refresh-successor", refresh_token.encode())
        )
        users: dict[str, Any] = {}

        def check_user(identity: str) -> None:
            if self._user_loader is not None:
                with database_errors_as_503():
                    users[identity] = self._user_loader(identity)
                if users[identity] is None:
                    raise UserNotFound

        def on_reuse(session_id: str, identity: str) -> None:
            self._revoked(state, [session_id], "refresh_token_reused", now)
            signals.refresh_token_reused.send(
                current_app._get_current_object(),  # type: ignore[attr-defined]
                identity=identity,
                session_id=session_id,
            )

        ctx = RefreshContext(
            now=now,
            idle_seconds=settings.refresh_token_expires,
            reuse_interval=settings.refresh_reuse_interval,
            ip=request.remote_addr,
            user_agent=request.user_agent.string,
            bind_ip=settings.bind_ip,
            bind_user_agent=settings.bind_user_agent,
        )
        rotation = state.store.rotate(refresh_token, successor, ctx, on_reuse, check_user)
        user = users.get(rotation.identity, rotation.identity)
        access, expires_in = self._access_token(
            state,
            user,
            rotation.identity,
            rotation.session_id,
            False,
            now,
            rotation.session_expires_at,
        )
        signals.token_refreshed.send(
            current_app._get_current_object(),  # type: ignore[attr-defined]
            identity=rotation.identity,
            session_id=rotation.session_id,
            rotated=rotation.rotated,
        )
        return TokenPair(
            token_type=settings.header_type,
            access_token=access,
            expires_in=expires_in,
            refresh_token=rotation.refresh_token,
            refresh_token_expires_in=rotation.refresh_expires_at - now,
            session_id=rotation.session_id,
        )

    # -- revocation --------------------------------------------------------

    def _revoked(self, state: AppState, session_ids: list[str], reason: str, now: int) -> None:
        if state.revocations is not None:
            state.revocations.add(session_ids, now)
        signals.session_revoked.send(
            current_app._get_current_object(),  # type: ignore[attr-defined]
            session_ids=session_ids,
            reason=reason,
        )

    def revoke_session(
        self, session_id: str, reason: str = "revoked", *, identity: str | None = None
    ) -> bool:
        """Revoke one session: its refresh tokens and its access tokens.

        :param identity: only revoke if the session belongs to this user.
        :returns: whether a live session was revoked.
        """
        _, state = current_extension()
        now = int(time.time())
        done = state.store.revoke_session(session_id, reason, now=now, identity=identity)
        if done:
            self._revoked(state, [session_id], reason, now)
        return done

    def revoke_user(self, identity: str, reason: str = "revoked") -> int:
        """Revoke every session of ``identity`` (log out everywhere).

        :returns: the number of sessions revoked.
        """
        _, state = current_extension()
        now = int(time.time())
        ids = state.store.revoke_user(identity, reason, now=now)
        if ids:
            self._revoked(state, ids, reason, now)
        return len(ids)

    def revoke_refresh_token(self, token: str, *, identity: str | None = None) -> bool:
        """Revoke the session of a refresh token (log out).

        :param identity: only revoke if the token belongs to this user.
        :returns: whether a live session was revoked; ``False`` for an unknown
            or malformed token.
        """
        if not looks_like_refresh_token(token):
            return False
        _, state = current_extension()
        found = state.store.session_of_refresh_token(token)
        if found is None or (identity is not None and found[1] != identity):
            return False
        return self.revoke_session(found[0], "logout")

    def list_sessions(self, identity: str) -> list[SessionInfo]:
        """The live sessions of ``identity``, newest first."""
        _, state = current_extension()
        return state.store.list_sessions(identity, now=int(time.time()))

    def purge_expired(self, *, batch_size: int = 1000) -> int:
        """Delete sessions past their absolute expiry, with their refresh tokens.

        Run it from a scheduled job (``flask jwt purge``).

        :returns: the number of sessions deleted.
        """
        _, state = current_extension()
        return state.store.purge_expired(now=int(time.time()), batch_size=batch_size)

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
        watch_model(self, model, identity_attr, revoke_on, revoke_on_delete)


def _engine_of(db: SQLAlchemy, app: Flask) -> Callable[[], Any]:
    # A weak reference: the per-app state holding this must not keep the app alive.
    app_ref = weakref.ref(app)

    def engine() -> Any:
        alive = app_ref()
        if alive is None:
            raise RuntimeError("The app of this engine was garbage-collected.")
        with alive.app_context():
            return db.engine

    return engine

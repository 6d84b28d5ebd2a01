"""The per-app service: what one app's token routes, views and commands call.

``init_app`` builds one :class:`Service` per app and keeps it in the
extension instance (``cocart_jwt.get_service(app)``), as Flask-SQLAlchemy
keeps its engines. The service owns the app's settings, store, revocation view
and rate limits, reads the callbacks from the registry it was given, and does
the operations: issue, refresh, revoke, verify, list sessions. The views, the
request helpers, the CLI and the model watcher all call it; none of them holds
state of its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from flask import Flask, Response, current_app

from . import signals
from .callbacks import Callbacks
from .clients import Client
from .config import Settings
from .database import database_errors_as_503
from .dpop import ProofChecker
from .exceptions import (
    AuthError,
    InvalidRefreshToken,
    InvalidToken,
    SessionRevoked,
    TokenExpired,
    UserNotFound,
)
from .limits import RateLimits
from .refresh_tokens import looks_like_refresh_token
from .results import SessionInfo, TokenPair
from .revocation import RevocationView
from .rotation import KeyCheck, SessionCheck, revoke_if_replayed, rotate
from .store import Store
from .tokens import encode_access_token
from .verified import VerifiedTokens

#: The key of the extension in ``app.extensions``.
EXTENSION_KEY = "cocart_jwt"
_MAX_IDENTITY_CHARS = 255


class ServiceRegistry(Protocol):
    """What ``app.extensions["cocart_jwt"]`` offers: the service of an app."""

    def get_service(self, app: Flask) -> Service:
        """The service of ``app``; ``RuntimeError`` if it was not initialised."""
        ...


def service_of(app: Flask) -> Service:
    """The service of ``app``, from the extension instance registered on it.

    :raises RuntimeError: the extension was not initialised on ``app``.
    """
    registry: ServiceRegistry | None = app.extensions.get(EXTENSION_KEY)
    if registry is None:
        raise RuntimeError(
            "Flask-CoCart-JWT is not initialised on this app. "
            "Did you forget to call cocart_jwt.init_app(app)?"
        )
    return registry.get_service(app)


class Service:
    """Tokens and sessions of one app.

    :param settings: the app's validated settings.
    :param store: the app's sessions and refresh tokens.
    :param revocations: the revocation view; ``None`` when
        ``COCART_JWT_REVOCATION_CHECK`` is off.
    :param limits: the rate limits; ``None`` when they are disabled.
    :param callbacks: the registry of the app's callbacks, read at each call.
    :param dpop: the DPoP proof checks; ``None`` when ``COCART_JWT_DPOP`` is ``"off"``.
    """

    def __init__(
        self,
        settings: Settings,
        store: Store,
        revocations: RevocationView | None,
        limits: RateLimits | None,
        callbacks: Callbacks,
        dpop: ProofChecker | None = None,
    ) -> None:
        self.settings = settings
        self.dpop = dpop
        self.store = store
        self.revocations = revocations
        self.limits = limits
        self.callbacks = callbacks
        self.verified = VerifiedTokens(settings)

    # -- users -----------------------------------------------------------

    def identity_of(self, user: Any) -> str:
        """The token identity of ``user`` (``user_identity_loader``).

        :raises TypeError: the loader returned anything but a non-empty
            string of at most 255 characters.
        """
        identity = self.callbacks.user_identity_loader_callback(user)
        if not isinstance(identity, str) or not identity or len(identity) > _MAX_IDENTITY_CHARS:
            raise TypeError("user_identity_loader must return a non-empty str of <= 255 chars.")
        return identity

    def check_credentials(self, username: str, password: str) -> Any:
        """The user of a login (``credentials_checker``), or ``None``.

        :raises RuntimeError: no credentials checker is registered.
        """
        checker = self.callbacks.credentials_checker_callback
        if checker is None:
            raise RuntimeError(
                "POST /login needs a credentials checker. Register one with "
                "@cocart_jwt.credentials_checker."
            )
        with database_errors_as_503():
            return checker(username, password)

    def load_user(self, identity: str) -> Any:
        """The user of ``identity`` from ``user_loader``; ``None`` without one.

        :raises UserNotFound: the user loader returned ``None``.
        :raises ServiceUnavailable: the loader lost its database.
        """
        loader = self.callbacks.user_loader_callback
        if loader is None:
            return None
        with database_errors_as_503():
            user = loader(identity)
        if user is None:
            raise UserNotFound
        return user

    # -- access tokens -----------------------------------------------------

    def verify(self, token: str) -> dict[str, Any]:
        """The claims of a valid access token whose session is not revoked.

        :raises AuthError: ``invalid_token``, ``token_expired``,
            ``session_revoked`` (or ``service_unavailable``).
        """
        claims = self.verified.decode(token, time.time())
        revocations = self.revocations
        if revocations is not None and revocations.is_revoked(claims["sid"]):
            raise SessionRevoked
        return claims

    def _access_token(
        self,
        user: Any,
        identity: str,
        session_id: str,
        *,
        fresh: bool,
        now: int,
        not_after: int,
        jkt: str | None = None,
    ) -> tuple[str, int]:
        """A signed access token (bound to ``jkt``) and its lifetime (capped at ``not_after``)."""
        loader = self.callbacks.additional_claims_loader_callback
        token, signed = encode_access_token(
            self.settings,
            identity=identity,
            session_id=session_id,
            fresh=fresh,
            now=now,
            additional_claims=loader(user) if loader is not None else None,
            not_after=not_after,
            jkt=jkt,
        )
        return token, int(signed["exp"]) - now

    # -- sessions ----------------------------------------------------------

    def issue(self, user: Any, *, fresh: bool, client: Client, jkt: str | None = None) -> TokenPair:
        """Open a session for ``user``, bound to the DPoP key ``jkt`` if given; its first pair."""
        settings = self.settings
        identity = self.identity_of(user)
        now = int(time.time())
        not_after = now + settings.session_max_age
        session_id, refresh, refresh_expires, evicted = self.store.create_session(
            identity,
            now=now,
            max_age=settings.session_max_age,
            idle_seconds=settings.refresh_token_expires,
            # The exp of the token signed below, recorded with the session.
            access_expires_at=min(now + settings.access_token_expires, not_after),
            client=client,
            max_sessions=settings.max_sessions_per_user,
            dpop_jkt=jkt,
        )
        if evicted:
            self.notify_revoked(evicted, "max_sessions", now)
        access, expires_in = self._access_token(
            user, identity, session_id, fresh=fresh, now=now, not_after=not_after, jkt=jkt
        )
        signals.tokens_issued.send(_app(), identity=identity, session_id=session_id)
        return TokenPair(
            token_type="DPoP" if jkt is not None else settings.header_type,
            access_token=access,
            expires_in=expires_in,
            refresh_token=refresh,
            refresh_token_expires_in=refresh_expires - now,
            session_id=session_id,
        )

    def refresh(
        self,
        refresh_token: object,
        client: Client,
        *,
        check_session: SessionCheck | None = None,
        jkt: str | None = None,
    ) -> TokenPair:
        """Rotate ``refresh_token`` and return the new pair.

        :param check_session: called with the token's session id before
            anything is consumed or revoked; raise to refuse the refresh.
        :param jkt: the thumbprint of the request's valid DPoP proof, if any.
        :raises AuthError: ``invalid_refresh_token``, ``refresh_token_expired``,
            ``refresh_token_reused``, ``user_not_found`` or ``invalid_dpop_proof``.
        """
        if not looks_like_refresh_token(refresh_token):
            raise InvalidRefreshToken
        assert isinstance(refresh_token, str)
        now = int(time.time())
        has_loader = self.callbacks.user_loader_callback is not None
        rotation = rotate(
            self.store,
            refresh_token,
            settings=self.settings,
            client=client,
            now=now,
            load_user=self.load_user if has_loader else None,
            on_reuse=self._reuse_handler(now),
            check_session=check_session,
            jkt=jkt,
        )
        access, expires_in = self._access_token(
            rotation.user,
            rotation.identity,
            rotation.session_id,
            fresh=False,
            now=now,
            not_after=rotation.session_expires_at,
            jkt=rotation.jkt,
        )
        signals.token_refreshed.send(
            _app(),
            identity=rotation.identity,
            session_id=rotation.session_id,
            rotated=rotation.rotated,
        )
        return TokenPair(
            token_type="DPoP" if rotation.jkt is not None else self.settings.header_type,
            access_token=access,
            expires_in=expires_in,
            refresh_token=rotation.refresh_token,
            refresh_token_expires_in=rotation.refresh_expires_at - now,
            session_id=rotation.session_id,
        )

    def revoke_if_replayed(
        self,
        refresh_token: str,
        client: Client,
        *,
        check_session: SessionCheck | None = None,
        jkt: str | None = None,
    ) -> bool:
        """Revoke the session of a refresh token whose use now would be a replay.

        Called when a refresh is refused before it runs (its per-token limit
        answered 429), so that a replay still revokes its session at once.
        Nothing is consumed; a retry inside the reuse interval is no replay.

        :param check_session: and ``jkt``: as for :meth:`refresh`.
        :returns: whether the session was revoked.
        """
        if not looks_like_refresh_token(refresh_token):
            return False
        now = int(time.time())
        return revoke_if_replayed(
            self.store,
            refresh_token,
            settings=self.settings,
            client=client,
            now=now,
            on_reuse=self._reuse_handler(now),
            check_session=check_session,
            jkt=jkt,
        )

    def _reuse_handler(self, now: int) -> Callable[[str, str], None]:
        """What to do after a replay revoked a session at ``now``: tell the
        revocation view and the signals."""

        def on_reuse(session_id: str, identity: str) -> None:
            self.notify_revoked([session_id], "refresh_token_reused", now)
            signals.refresh_token_reused.send(_app(), identity=identity, session_id=session_id)

        return on_reuse

    def notify_revoked(self, session_ids: list[str], reason: str, now: int) -> None:
        """Tell this process's revocation view and the ``session_revoked`` signal."""
        if self.revocations is not None:
            self.revocations.add(session_ids, now)
        signals.session_revoked.send(_app(), session_ids=session_ids, reason=reason)

    def revoke_session(self, session_id: str, reason: str, *, identity: str | None = None) -> bool:
        """Revoke one session; with ``identity``, only if it is that user's.

        :returns: whether a live session was revoked.
        """
        now = int(time.time())
        done = self.store.revoke_session(session_id, reason, now=now, identity=identity)
        if done:
            self.notify_revoked([session_id], reason, now)
        return done

    def revoke_user(self, identity: str, reason: str) -> int:
        """Revoke every session of ``identity``; return how many."""
        now = int(time.time())
        ids = self.store.revoke_user(identity, reason, now=now)
        if ids:
            self.notify_revoked(ids, reason, now)
        return len(ids)

    def revoke_refresh_token(
        self,
        token: object,
        *,
        identity: str | None = None,
        check_session: SessionCheck | None = None,
        check_key: KeyCheck | None = None,
    ) -> bool:
        """Revoke the session of a refresh token; ``False`` for an unknown one.

        ``check_session`` (called with the session id) and ``check_key`` (with
        the DPoP key thumbprint it is bound to, or ``None``) raise to refuse.
        """
        if not looks_like_refresh_token(token):
            return False
        assert isinstance(token, str)
        found = self.store.session_of_refresh_token(token)
        if found is None or (identity is not None and found[1] != identity):
            return False
        if check_session is not None:
            check_session(found[0])
        if check_key is not None:
            check_key(found[2])
        return self.revoke_session(found[0], "logout")

    def revoke_token(self, token: str, *, check_key: KeyCheck | None = None) -> bool:
        """Revoke the session of a refresh token or of an access token (RFC 7009).

        The kind of token is told by its form (a refresh token starts with
        ``rt_``, an access token is a JWS), so RFC 7009's ``token_type_hint``
        is not needed. An access token must pass :meth:`verify`: an expired,
        forged or already revoked one revokes nothing.

        :returns: whether a live session was revoked; ``False`` for a token
            that is unknown, invalid or expired.
        :raises ServiceUnavailable: the database is down.
        """
        if looks_like_refresh_token(token):
            return self.revoke_refresh_token(token, check_key=check_key)
        try:
            claims = self.verify(token)
        except (InvalidToken, TokenExpired, SessionRevoked):
            return False
        if check_key is not None:
            check_key(claims.get("cnf", {}).get("jkt"))  # our own signed claims
        return self.revoke_session(str(claims["sid"]), "logout")

    def list_sessions(self, identity: str) -> list[SessionInfo]:
        """The live sessions of ``identity``, newest first."""
        return self.store.list_sessions(identity, now=int(time.time()))

    def purge_expired_batches(self, *, batch_size: int = 1000) -> Iterator[int]:
        """Delete expired sessions, one batch at a time; yields each batch's count."""
        return self.store.iter_purge_expired(now=int(time.time()), batch_size=batch_size)

    # -- errors and shutdown -------------------------------------------------

    def render_error(self, error: AuthError) -> Response:
        """The response of ``error``: the app's ``error_response_loader``."""
        response = self.callbacks.error_response_loader_callback(error)
        challenge = response.headers.get("WWW-Authenticate", "")
        scheme = self.settings.header_type
        if challenge.startswith("Bearer ") and scheme != "Bearer":
            # Name the scheme the app expects (COCART_JWT_HEADER_TYPE).
            response.headers["WWW-Authenticate"] = scheme + challenge[6:]
        return response

    def close(self) -> None:
        """Stop the revocation view's thread and close the store's connections.

        For tests and for apps thrown away in a running process; the service
        works again (and reconnects) if it is used afterwards."""
        if self.revocations is not None:
            self.revocations.close()
        self.store.close()


def _app() -> Flask:
    """The current app, as the sender of signals."""
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    return app

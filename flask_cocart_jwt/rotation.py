"""Refresh-token rotation: the one place that decides what a refresh may do.

A refresh **consumes** the presented token and issues its **successor** in
the same session (the token family), in one transaction (see
:meth:`~flask_cocart_jwt.store.Store.claim` and
:meth:`~flask_cocart_jwt.store.Store.consume`): of any number of concurrent
uses, exactly one rotates. On PostgreSQL the rotation is written first (one
statement) and checked after, in the same transaction; a refusal rolls it back.
Then, for a token that was already consumed:

* **retry**: inside ``COCART_JWT_REFRESH_REUSE_INTERVAL``, a retry of the
  *direct parent* whose successor is still unused gets the same successor
  again. The successor is derived from its parent (an HMAC with a key of the
  app's keyring), so it can be given again although only its hash is stored:
  a lost response or a second tab does not log the user out, and a session
  never forks into two live refresh tokens;
* **replay**: anything else revokes the whole session (the **family
  revocation**), which also ends its access tokens through the revocation
  check, and raises :class:`~flask_cocart_jwt.exceptions.RefreshTokenReused`.

The user's ``user_loader`` is never called inside the rotating transaction:
a slow loader must not hold a connection or row locks.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

from .clients import Client
from .config import Settings
from .exceptions import (
    InvalidDPoPProof,
    InvalidRefreshToken,
    RefreshTokenExpired,
    RefreshTokenReused,
)
from .keys import b64url
from .refresh_tokens import REFRESH_TOKEN_PREFIX, hash_refresh_token
from .store import Store

#: ``load_user(identity) -> user``; raises to refuse the refresh.
UserLoader = Callable[[str], Any]
#: ``on_reuse(session_id, identity)``, called after a replay revoked a session.
ReuseHandler = Callable[[str, str], None]
#: ``check_session(session_id)``: raises to refuse the token before anything changes.
SessionCheck = Callable[[str], None]
#: ``check_key(jkt)``: called with the DPoP key a session is bound to (or
#: ``None``); raises to refuse the token before anything changes.
KeyCheck = Callable[[str | None], None]


@dataclass(frozen=True, slots=True)
class Rotation:
    """The outcome of a successful refresh."""

    identity: str
    session_id: str
    refresh_token: str
    refresh_expires_at: int
    #: ``False`` when a retry inside the reuse interval got the same successor.
    rotated: bool
    #: The session's absolute expiry: no token of it may outlive it.
    session_expires_at: int
    #: What the user loader returned, or the identity without one.
    user: Any = None
    #: The DPoP key thumbprint the session is bound to after this refresh.
    jkt: str | None = None


def successor_of(token: str, settings: Settings) -> str:
    """The successor of refresh token ``token``: the same for every retry."""
    derived = settings.keyring.derive("refresh-successor", token.encode())
    return REFRESH_TOKEN_PREFIX + b64url(derived)


def rotate(
    store: Store,
    token: str,
    *,
    settings: Settings,
    client: Client,
    now: int,
    load_user: UserLoader | None,
    on_reuse: ReuseHandler,
    check_session: SessionCheck | None = None,
    jkt: str | None = None,
) -> Rotation:
    """Consume ``token`` and issue its successor, or answer a retry or a replay.

    :param load_user: called with the identity before anything is consumed
        (outside the transaction); raise to refuse the refresh.
    :param on_reuse: called after a replay revoked the session.
    :param check_session: called with the token's session id as soon as its
        row is read, before anything is committed or revoked (a token
        consumed by the read is rolled back); raise to refuse
        (cookie mode checks that the CSRF token is of this session).
    :param jkt: the thumbprint of the request's valid DPoP proof, if any. A
        session bound to a key needs a proof by that key before anything
        else; an unbound session is bound to ``jkt`` by its rotation.
    :raises InvalidRefreshToken: unknown token, revoked session, binding
        mismatch.
    :raises InvalidDPoPProof: the session is bound to another key, or to
        one and no proof was sent (or ``"required"`` and none was sent).
    :raises RefreshTokenExpired: the token or its session is past expiry.
    :raises RefreshTokenReused: a consumed token was replayed; the session
        is now revoked.
    """
    refresh = _Refresh(store, token, settings, client, now, check_session, jkt)
    return refresh.run(load_user, on_reuse)


def revoke_if_replayed(
    store: Store,
    token: str,
    *,
    settings: Settings,
    client: Client,
    now: int,
    on_reuse: ReuseHandler,
    check_session: SessionCheck | None = None,
    jkt: str | None = None,
) -> bool:
    """Revoke the session of ``token`` if a refresh with it now would be a replay.

    For a refresh refused before it runs (by its per-token limit): a replay
    must still revoke its session at once, not when the limit lets it
    through. Nothing is consumed, and a retry inside the reuse interval is
    left alone, exactly as :func:`rotate` would, and so is a token of a
    session bound to another DPoP key than ``jkt``'s.

    :param check_session: as for :func:`rotate`: raise to refuse before
        anything is revoked.
    :returns: whether the session was revoked (``on_reuse`` was called).
    """
    refresh = _Refresh(store, token, settings, client, now, check_session, jkt)
    return refresh.revoke_if_replayed(on_reuse)


class _Refresh:
    """One refresh request, from the token row to its outcome."""

    def __init__(
        self,
        store: Store,
        token: str,
        settings: Settings,
        client: Client,
        now: int,
        check_session: SessionCheck | None = None,
        jkt: str | None = None,
    ) -> None:
        self.store = store
        self.check_session = check_session
        self.jkt = jkt
        self.settings = settings
        self.client = client
        self.now = now
        self.token_hash = hash_refresh_token(token)
        self.successor = successor_of(token, settings)

    def run(self, load_user: UserLoader | None, on_reuse: ReuseHandler) -> Rotation:
        store = self.store
        if load_user is None:
            # The common case, read and rotate, is one transaction on one connection.
            with store.begin() as conn:
                rotation = self.rotate_in_one(conn, None)
                if rotation is not None:
                    return rotation
                row = self.row(conn)  # used, unknown, or not PostgreSQL
                if row.used_at is None:
                    self.check_usable(row)
                    rotation = self.consume(conn, row, row.identity)
                    if rotation is not None:
                        return rotation
        else:
            row = self.row()
            if row.used_at is None:
                self.check_usable(row)
                user = load_user(row.identity)
                with store.begin() as conn:
                    rotation = self.rotate_in_one(conn, user)
                    if rotation is None:  # not PostgreSQL, or lost a race
                        rotation = self.consume(conn, row, user)
                if rotation is not None:
                    return rotation
        if row.used_at is None:
            row = self.row()  # lost a race: now consumed
        retry = self.reuse(row, on_reuse)
        user = row.identity if load_user is None else load_user(row.identity)
        return self.outcome(row, retry, rotated=False, user=user)

    def rotate_in_one(self, conn: Any, user: Any) -> Rotation | None:
        """On PostgreSQL, the rotation as one statement, then its checks; ``None``
        when no unused token was claimed (used, unknown), and on other databases.

        Rotated first, checked next: a refusal raises out of the transaction,
        whose rollback writes nothing.

        :param user: the loaded user; ``None``: the token's identity.
        """
        settings = self.settings
        claimed = self.store.claim(
            conn,
            self.token_hash,
            hash_refresh_token(self.successor),
            now=self.now,
            access_life=settings.access_token_expires,
            refresh_life=settings.refresh_token_expires,
            jkt=self.jkt,
        )
        if claimed is None:
            return None
        self.check_row(claimed)
        self.check_usable(claimed)
        if not claimed.issued:
            raise InvalidRefreshToken  # revoked meanwhile: revoke wins
        expires_at = self.refresh_expires_at(claimed)
        user = claimed.identity if user is None else user
        return self.outcome(claimed, expires_at, rotated=True, user=user)

    def revoke_if_replayed(self, on_reuse: ReuseHandler) -> bool:
        """Revoke the session if using the token now would be a replay; consume nothing."""
        try:
            row = self.row()
            if row.used_at is not None:
                self.reuse(row, on_reuse)
        except RefreshTokenReused:
            return True
        except (InvalidRefreshToken, RefreshTokenExpired, InvalidDPoPProof):
            pass
        return False

    def reuse(self, row: Any, on_reuse: ReuseHandler) -> int:
        """A consumed token used again: the successor's expiry for a retry;
        for anything else, revoke the family."""
        if row.session_expires_at <= self.now:
            raise RefreshTokenExpired  # a dead session is not worth revoking
        retry = self.retry(row)
        if retry is None:
            self.revoke_family(row, on_reuse)
        return retry

    def row(self, conn: Any = None) -> Any:
        """The presented token's row, checked by :meth:`check_row`."""
        row = self.store.token_row(self.token_hash, conn)
        self.check_row(row)
        return row

    def check_row(self, row: Any) -> None:
        """Unknown or revoked tokens are invalid; then the session check and
        the DPoP key, before anything is committed or revoked."""
        if row is None or row.revoked_at is not None:
            raise InvalidRefreshToken
        if self.check_session is not None:
            self.check_session(row.session_id)
        self.check_key(row)

    def check_key(self, row: Any) -> None:
        """DPoP: a bound session's token needs a proof by its key, before
        anything is consumed or revoked (a thief without the key can do
        nothing with it, not even revoke the session by replaying it)."""
        bound, jkt, dpop = row.dpop_jkt, self.jkt, self.settings.dpop
        if bound is None:
            if jkt is None and dpop is not None and dpop.required:
                raise InvalidDPoPProof(algs=dpop.algs)
            return
        if dpop is None:  # DPoP switched off: a bound session cannot be refreshed
            raise InvalidRefreshToken
        if jkt is None or not hmac.compare_digest(jkt.encode(), str(bound).encode()):
            raise InvalidDPoPProof(algs=dpop.algs)

    def check_usable(self, row: Any) -> None:
        """Refuse an expired token, or one used from another client when bound."""
        if row.expires_at <= self.now or row.session_expires_at <= self.now:
            raise RefreshTokenExpired
        self.check_binding(row)

    def check_binding(self, row: Any) -> None:
        """``COCART_JWT_BIND_IP`` / ``_BIND_USER_AGENT``: the session's own client only."""
        settings, client = self.settings, self.client
        if (settings.bind_ip and row.ip != client.stored_ip) or (
            settings.bind_user_agent and row.user_agent != client.stored_user_agent
        ):
            raise InvalidRefreshToken

    def access_expires_at(self, row: Any) -> int:
        """The ``exp`` of the access token this refresh issues (the service
        signs it with the same ``now`` and the session's expiry as cap)."""
        return min(self.now + self.settings.access_token_expires, int(row.session_expires_at))

    def consume(self, conn: Any, row: Any, user: Any) -> Rotation | None:
        """Rotate ``row``'s token; ``None`` if another request consumed it first."""
        if not self.store.consume(conn, row.id, now=self.now):
            return None
        return self.issue(conn, row, user)

    def refresh_expires_at(self, row: Any) -> int:
        """The successor's expiry (the store's one-statement rotation computes the same)."""
        return min(self.now + self.settings.refresh_token_expires, int(row.session_expires_at))

    def issue(self, conn: Any, row: Any, user: Any) -> Rotation:
        """The successor of ``row``'s token, which ``conn``'s transaction consumed."""
        expires_at = self.refresh_expires_at(row)
        if not self.store.issue_successor(
            conn,
            row,
            hash_refresh_token(self.successor),
            now=self.now,
            expires_at=expires_at,
            access_expires_at=self.access_expires_at(row),
            jkt=self.jkt,
        ):
            raise InvalidRefreshToken  # revoked meanwhile: revoke wins, roll back
        return self.outcome(row, expires_at, rotated=True, user=user)

    def outcome(self, row: Any, expires_at: int, *, rotated: bool, user: Any) -> Rotation:
        """The successor of ``row``'s token, expiring at ``expires_at``."""
        return Rotation(
            row.identity,
            row.session_id,
            self.successor,
            expires_at,
            rotated=rotated,
            session_expires_at=row.session_expires_at,
            user=user,
            # Bound before (checked by check_key), or by this rotation.
            jkt=row.dpop_jkt if row.dpop_jkt is not None else self.jkt if rotated else None,
        )

    def retry(self, row: Any) -> int | None:
        """The successor's expiry, for a retry of its direct parent inside the
        reuse interval while the successor is still unused; else ``None``."""
        interval = self.settings.refresh_reuse_interval
        if interval <= 0 or self.now - row.used_at > interval:
            return None
        # Revoked since the token was read: the store finds no child; revoke wins.
        child = self.store.child_of(row.id, hash_refresh_token(self.successor))
        if child is None or child.used_at is not None or child.expires_at <= self.now:
            return None
        # A retry answers to the same bindings as a first use: a replay from
        # another client must not pick up the successor.
        self.check_binding(row)
        # Its access token is recorded too; revoked since the read: revoke wins.
        if not self.store.extend_access(row.session_id, self.access_expires_at(row)):
            return None
        return int(child.expires_at)

    def revoke_family(self, row: Any, on_reuse: ReuseHandler) -> NoReturn:
        """A replay: revoke the whole session and say so."""
        revoked = self.store.revoke_session(row.session_id, "refresh_token_reused", now=self.now)
        if not revoked:
            raise InvalidRefreshToken  # revoked meanwhile (e.g. a logout): revoke wins
        on_reuse(row.session_id, row.identity)
        raise RefreshTokenReused(session_id=row.session_id)

"""The session and refresh-token store: the only module that touches the database.

Every write is one short transaction on a connection of its own, so that the
extension never commits (or rolls back) the user's ``db.session``. Rotation
consumes the presented token with a conditional ``UPDATE ... WHERE used_at IS
NULL`` in the same transaction that inserts its successor: whatever the number
of concurrent uses, exactly one sees ``rowcount == 1``, on SQLite, PostgreSQL
and MariaDB alike.

Connection failures become :class:`~flask_cocart_jwt.exceptions.ServiceUnavailable`
(503) through :func:`~flask_cocart_jwt.database.database_errors_as_503`.
"""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, insert, select

from .database import database_errors_as_503
from .exceptions import InvalidRefreshToken, RefreshTokenExpired, RefreshTokenReused
from .models import Tables
from .queries import RotationStatements, live, newest_first, revoke
from .records import SessionInfo
from .refresh_tokens import (
    hash_refresh_token,
    new_refresh_token,
    stored_ip,
    stored_user_agent,
)


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


@dataclass(frozen=True, slots=True)
class RefreshContext:
    """What the store needs to know about a refresh request."""

    now: int
    idle_seconds: int
    reuse_interval: int
    ip: str | None = None
    user_agent: str | None = None
    bind_ip: bool = False
    bind_user_agent: bool = False


class Store:
    """Sessions and refresh tokens of one app.

    :param tables: the token tables.
    :param engine_getter: returns the engine to use; called once per process.
    :param create_tables: create the tables on first use (the embedded default).
    """

    def __init__(
        self,
        tables: Tables,
        engine_getter: Callable[[], Engine],
        *,
        create_tables: bool = False,
    ) -> None:
        self.tables = tables
        self._engine_getter = engine_getter
        self._create_tables = create_tables
        self._engine: Engine | None = None
        self._pid = 0
        self._lock = threading.Lock()
        self._rotation = RotationStatements(tables)

    # -- connections ---------------------------------------------------

    @property
    def engine(self) -> Engine:
        """The engine, created (and the tables with it) on first use."""
        engine = self._engine
        if engine is not None and self._pid == os.getpid():
            return engine
        with self._lock:
            if self._engine is None or self._pid != os.getpid():
                if self._engine is not None:
                    # A forked worker must not reuse its parent's connections.
                    self._engine.dispose(close=False)
                engine = self._engine_getter()
                if self._create_tables:
                    with database_errors_as_503():
                        self.tables.sessions.metadata.create_all(engine)
                self._engine, self._pid = engine, os.getpid()
            return self._engine

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A transaction on a connection of the extension's own."""
        with database_errors_as_503(), self.engine.begin() as conn:
            yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection for reads."""
        with database_errors_as_503(), self.engine.connect() as conn:
            yield conn

    # -- sessions --------------------------------------------------------

    def create_session(
        self,
        identity: str,
        *,
        now: int,
        max_age: int,
        idle_seconds: int,
        ip: str | None,
        user_agent: str | None,
        max_sessions: int | None = None,
    ) -> tuple[str, str, int, list[str]]:
        """Open a session with its first refresh token.

        :returns: the session id, the refresh token, its expiry, and the ids of
            older sessions revoked to respect ``max_sessions``.
        """
        s, t = self.tables.sessions, self.tables.refresh_tokens
        session_id = secrets.token_urlsafe(16)
        token = new_refresh_token()
        expires_at = now + max_age
        token_expires = min(now + idle_seconds, expires_at)
        evicted: list[str] = []
        with self.begin() as conn:
            conn.execute(
                insert(s).values(
                    id=session_id,
                    identity=identity,
                    created_at=now,
                    last_used_at=now,
                    expires_at=expires_at,
                    ip=stored_ip(ip),
                    user_agent=stored_user_agent(user_agent),
                )
            )
            conn.execute(
                insert(t).values(
                    token_hash=hash_refresh_token(token),
                    session_id=session_id,
                    created_at=now,
                    expires_at=token_expires,
                )
            )
            if max_sessions is not None:
                rows = conn.execute(
                    select(s.c.id)
                    .where(live(s, identity, now))
                    .order_by(*newest_first(s, t))
                    .offset(max_sessions)
                ).all()
                evicted = [r.id for r in rows if r.id != session_id]
                if evicted:
                    conn.execute(revoke(s, now, "max_sessions").where(s.c.id.in_(evicted)))
        return session_id, token, token_expires, evicted

    def rotate(
        self,
        token: str,
        successor: str,
        ctx: RefreshContext,
        on_reuse: Callable[[str, str], None],
        check_identity: Callable[[str], None] | None = None,
    ) -> Rotation:
        """Consume ``token`` and issue ``successor`` in its session.

        :param successor: the successor token, derived from ``token`` by the
            caller so that a retry inside the reuse interval gets it again.
        :param on_reuse: called with ``(session_id, identity)`` after a replay
            revoked a session.
        :param check_identity: called with the identity before anything is
            consumed; raise to refuse the refresh (e.g. the user is gone).
        :raises InvalidRefreshToken: unknown token, revoked session, binding
            mismatch.
        :raises RefreshTokenExpired: the token or its session is past expiry.
        :raises RefreshTokenReused: a consumed token was replayed; the session
            is now revoked.
        """
        # The common case, read and rotate, is one transaction on one connection.
        with self.begin() as conn:
            row = self._token_row(token, conn)
            if row.used_at is None:
                self._check_usable(row, ctx)
                if check_identity is not None:
                    check_identity(row.identity)
                rotation = self._consume(row, successor, ctx, conn)
                if rotation is not None:
                    return rotation
        if row.used_at is None:
            row = self._token_row(token)  # lost a race: now consumed
        if row.session_expires_at <= ctx.now:
            raise RefreshTokenExpired  # a dead session is not worth revoking
        retry = self._retry(row, successor, ctx)
        if retry is None:
            if not self.revoke_session(row.session_id, "refresh_token_reused", now=ctx.now):
                raise InvalidRefreshToken  # revoked meanwhile (e.g. a logout): revoke wins
            on_reuse(row.session_id, row.identity)
            raise RefreshTokenReused
        if check_identity is not None:
            check_identity(row.identity)
        return retry

    def _token_row(self, token: str, conn: Connection | None = None) -> Any:
        query, params = self._rotation.token_row, {"b_hash": hash_refresh_token(token)}
        if conn is None:
            with self.read() as own:
                row = own.execute(query, params).first()
        else:
            row = conn.execute(query, params).first()
        if row is None or row.revoked_at is not None:
            raise InvalidRefreshToken
        return row

    @staticmethod
    def _check_usable(row: Any, ctx: RefreshContext) -> None:
        if row.expires_at <= ctx.now or row.session_expires_at <= ctx.now:
            raise RefreshTokenExpired
        Store._check_binding(row, ctx)

    @staticmethod
    def _check_binding(row: Any, ctx: RefreshContext) -> None:
        if (ctx.bind_ip and row.ip != stored_ip(ctx.ip)) or (
            ctx.bind_user_agent and row.user_agent != stored_user_agent(ctx.user_agent)
        ):
            raise InvalidRefreshToken

    def _consume(
        self, row: Any, successor: str, ctx: RefreshContext, conn: Connection
    ) -> Rotation | None:
        """Consume ``row`` and insert ``successor`` in ``conn``'s transaction.

        :returns: ``None`` when another request consumed it first (nothing
            was written).
        """
        statements = self._rotation
        expires_at = min(ctx.now + ctx.idle_seconds, row.session_expires_at)
        consumed = conn.execute(statements.consume, {"b_id": row.id, "b_now": ctx.now})
        if consumed.rowcount != 1:
            return None
        touched = conn.execute(statements.touch, {"b_session": row.session_id, "b_now": ctx.now})
        if touched.rowcount != 1:
            raise InvalidRefreshToken  # revoked meanwhile: revoke wins, roll back
        conn.execute(
            statements.insert,
            {
                "token_hash": hash_refresh_token(successor),
                "session_id": row.session_id,
                "parent_id": row.id,
                "created_at": ctx.now,
                "expires_at": expires_at,
            },
        )
        return Rotation(
            row.identity,
            row.session_id,
            successor,
            expires_at,
            rotated=True,
            session_expires_at=row.session_expires_at,
        )

    def _retry(self, row: Any, successor: str, ctx: RefreshContext) -> Rotation | None:
        """The same successor again, for a retry of its direct parent inside
        the reuse interval while the successor is still unused; else ``None``."""
        if ctx.reuse_interval <= 0 or ctx.now - row.used_at > ctx.reuse_interval:
            return None
        s, t = self.tables.sessions, self.tables.refresh_tokens
        with self.read() as conn:
            child = conn.execute(
                select(t.c.used_at, t.c.expires_at)
                .join(s, s.c.id == t.c.session_id)
                .where(
                    t.c.token_hash == hash_refresh_token(successor),
                    t.c.parent_id == row.id,
                    # Revoked since the token was read: revoke wins.
                    s.c.revoked_at.is_(None),
                )
            ).first()
        if child is None or child.used_at is not None or child.expires_at <= ctx.now:
            return None
        # A retry answers to the same bindings as a first use: a replay from
        # another client must not pick up the successor.
        self._check_binding(row, ctx)
        return Rotation(
            row.identity,
            row.session_id,
            successor,
            child.expires_at,
            rotated=False,
            session_expires_at=row.session_expires_at,
        )

    def revoke_session(
        self, session_id: str, reason: str, *, now: int, identity: str | None = None
    ) -> bool:
        """Revoke one session; with ``identity``, only if it is that user's.

        :returns: whether a live session was revoked.
        """
        s = self.tables.sessions
        query = revoke(s, now, reason).where(s.c.id == session_id, s.c.revoked_at.is_(None))
        if identity is not None:
            query = query.where(s.c.identity == identity)
        with self.begin() as conn:
            return bool(conn.execute(query).rowcount)

    def revoke_user(
        self, identity: str, reason: str, *, now: int, conn: Connection | None = None
    ) -> list[str]:
        """Revoke every live session of ``identity``; return their ids.

        :param conn: run inside this connection's transaction (used by
            ``watch_user_model`` to commit with the user's own change).
        """
        s = self.tables.sessions
        if conn is None:
            with self.begin() as own:
                return self.revoke_user(identity, reason, now=now, conn=own)
        ids = [
            r.id
            for r in conn.execute(
                select(s.c.id).where(s.c.identity == identity, s.c.revoked_at.is_(None))
            )
        ]
        if ids:
            conn.execute(revoke(s, now, reason).where(s.c.id.in_(ids), s.c.revoked_at.is_(None)))
        return ids

    def session_of_refresh_token(self, token: str) -> tuple[str, str] | None:
        """``(session_id, identity)`` of a refresh token, or ``None``."""
        s, t = self.tables.sessions, self.tables.refresh_tokens
        with self.read() as conn:
            row = conn.execute(
                select(s.c.id, s.c.identity)
                .join(t, t.c.session_id == s.c.id)
                .where(t.c.token_hash == hash_refresh_token(token))
            ).first()
        return (row.id, row.identity) if row is not None else None

    def list_sessions(self, identity: str, *, now: int) -> list[SessionInfo]:
        """The live sessions of ``identity``, newest first."""
        s, t = self.tables.sessions, self.tables.refresh_tokens
        with self.read() as conn:
            rows = conn.execute(
                select(s).where(live(s, identity, now)).order_by(*newest_first(s, t))
            ).all()
        return [
            SessionInfo(r.id, r.created_at, r.last_used_at, r.expires_at, r.ip, r.user_agent)
            for r in rows
        ]

    def revoked_since(self, since: int) -> list[tuple[str, int]]:
        """``(session_id, revoked_at)`` of sessions revoked at or after ``since``."""
        s = self.tables.sessions
        with self.read() as conn:
            rows = conn.execute(select(s.c.id, s.c.revoked_at).where(s.c.revoked_at >= since)).all()
        return [(r.id, r.revoked_at) for r in rows]

    def purge_expired(self, *, now: int, batch_size: int = 1000) -> int:
        """Delete sessions past their absolute expiry, with their tokens.

        Consumed tokens (tombstones) of live sessions are kept: they detect
        re-use for the session's whole life.

        :returns: the number of sessions deleted.
        """
        return sum(self.iter_purge_expired(now=now, batch_size=batch_size))

    def count_expired(self, *, now: int) -> int:
        """The number of sessions past their absolute expiry (to be purged)."""
        s = self.tables.sessions
        with self.read() as conn:
            return int(
                conn.execute(
                    select(func.count()).select_from(s).where(s.c.expires_at <= now)
                ).scalar_one()
            )

    def iter_purge_expired(self, *, now: int, batch_size: int = 1000) -> Iterator[int]:
        """Like :meth:`purge_expired`, one batch at a time (for progress bars).

        Each batch is its own transaction; the generator yields the number of
        sessions it deleted and stops when none are left.
        """
        s, t = self.tables.sessions, self.tables.refresh_tokens
        while True:
            with self.begin() as conn:
                ids = [
                    r.id
                    for r in conn.execute(
                        select(s.c.id).where(s.c.expires_at <= now).limit(batch_size)
                    )
                ]
                if ids:
                    conn.execute(delete(t).where(t.c.session_id.in_(ids)))
                    conn.execute(delete(s).where(s.c.id.in_(ids)))
            if not ids:
                return
            yield len(ids)

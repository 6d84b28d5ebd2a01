"""The session and refresh-token store: persistence, and all of the SQL.

The only module that runs queries on the token tables. It decides nothing
about tokens: what a refresh may do is :mod:`flask_cocart_jwt.rotation`'s
call, and this module offers it the statements it needs, each atomic on
SQLite, PostgreSQL and MariaDB alike.

Every write is one short transaction on a connection of its own, so that the
extension never commits (or rolls back) the user's ``db.session``. Consuming a
refresh token is a conditional ``UPDATE ... WHERE used_at IS NULL``: whatever
the number of concurrent uses, exactly one sees ``rowcount == 1`` (or, with
``RETURNING``, gets the row back).

Connection failures become :class:`~flask_cocart_jwt.exceptions.ServiceUnavailable`
(503) through :func:`~flask_cocart_jwt.database.database_errors_as_503`.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, insert, select, union_all

from .clients import Client
from .database import create_tables, database_errors_as_503, notify
from .forks import PerProcess
from .models import Tables
from .push import CHANNEL, encode
from .refresh_tokens import hash_refresh_token, new_refresh_token
from .results import SessionInfo
from .schema import upgrade_tables
from .statements import Statements, assumed_access_expiry, live, newest_first, revoke_statement


class Store:
    """Sessions and refresh tokens of one app.

    :param tables: the token tables.
    :param engine_getter: returns the engine to use; called once per process.
    :param embedded: the tables live in the extension's own database (not in
        the user's ``db``); they are then created (or upgraded) on first use.
    :param access_lifetime: the access-token lifetime, in seconds.
    :param legacy_access_lifetime: for a session opened before 0.2, whose
        access tokens' expiry was not recorded: the seconds after its last
        use that they are assumed to expire within.
    :param announce: on PostgreSQL, send ``NOTIFY`` (see :mod:`.push`) in the
        transaction of each revocation.
    """

    def __init__(
        self,
        tables: Tables,
        engine_getter: Callable[[], Engine],
        *,
        embedded: bool = False,
        access_lifetime: int = 0,
        legacy_access_lifetime: int = 0,
        announce: bool = False,
    ) -> None:
        self.tables = tables
        #: Whether the tables live in the extension's own database.
        self.embedded = embedded
        self.access_lifetime = access_lifetime
        self.legacy_access_lifetime = legacy_access_lifetime
        self.announce = announce
        self._engine_getter = engine_getter
        # A forked worker must not reuse its parent's connections.
        self._engine = PerProcess(self._connect, lambda e: e.dispose(close=False))
        self._statements = Statements(tables)

    # -- connections ---------------------------------------------------

    def _connect(self) -> Engine:
        engine = self._engine_getter()
        if self.embedded:
            try:
                with database_errors_as_503():
                    create_tables(engine, self.tables.sessions.metadata)
                    upgrade_tables(engine, self.tables)
            except BaseException:
                engine.dispose()  # the next use makes a new engine, and tries again
                raise
        return engine

    @property
    def engine(self) -> Engine:
        """The engine of this process, created (and the tables with it) on first use."""
        return self._engine.value or self._engine.get()

    def close(self) -> None:
        """Close the connections of this process's engine (it reconnects on next use)."""
        engine = self._engine.value
        if engine is not None:
            engine.dispose()

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
        access_expires_at: int,
        client: Client,
        max_sessions: int | None = None,
        dpop_jkt: str | None = None,
    ) -> tuple[str, str, int, list[str]]:
        """Open a session with its first refresh token.

        :param access_expires_at: the ``exp`` of the access token that will be
            issued with it.
        :param dpop_jkt: bind the session to this DPoP key thumbprint.
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
                    access_expires_at=access_expires_at,
                    ip=client.stored_ip,
                    user_agent=client.stored_user_agent,
                    dpop_jkt=dpop_jkt,
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
                    revoke = self.revocation(now, "max_sessions")
                    conn.execute(revoke.where(s.c.id.in_(evicted)))
                    notify(conn, CHANNEL, encode(evicted, now), self.announce)
        return session_id, token, token_expires, evicted

    # -- refresh tokens ----------------------------------------------------

    def token_row(self, token_hash: str, conn: Connection | None = None) -> Any:
        """The row of a refresh token joined with its session, or ``None``: ``id``,
        ``session_id``, ``expires_at``, ``used_at``, ``identity``, ``session_expires_at``,
        ``revoked_at``, ``ip``, ``user_agent``, ``dpop_jkt``.

        :param conn: read in this connection's transaction; else on its own.
        """
        query, params = self._statements.token_row, {"b_hash": token_hash}
        if conn is not None:
            return conn.execute(query, params).first()
        with self.read() as own:
            return own.execute(query, params).first()

    def claim(
        self,
        conn: Connection,
        token_hash: str,
        successor_hash: str,
        *,
        now: int,
        access_life: int,
        refresh_life: int,
        jkt: str | None,
    ) -> Any:
        """On PostgreSQL, rotate in one statement: consume the unused token
        ``token_hash``, record the refresh on its session (as
        :meth:`issue_successor`) and insert ``successor_hash``. Returns
        :meth:`token_row`'s row (``used_at`` = ``now``) with ``issued``: 0 when
        the session is revoked, or was meanwhile (nothing inserted).

        Nothing is checked: the caller checks the row, and rolls back to refuse
        it. ``None`` when no unused token has this hash, and on other databases
        (nothing written: use :meth:`token_row` and :meth:`consume`; SQLite gained
        nothing by it, and would take its write lock for every refused token).
        """
        if conn.dialect.name != "postgresql":
            return None
        params = {"b_hash": token_hash, "b_successor": successor_hash, "b_now": now}
        params.update(b_access_life=access_life, b_refresh_life=refresh_life, b_jkt=jkt)
        return conn.execute(self._statements.rotate, params).first()

    def consume(self, conn: Connection, token_id: int, *, now: int) -> bool:
        """Mark a token used, in ``conn``'s transaction, unless it is already.

        :returns: ``False`` when another request consumed it first.
        """
        consumed = conn.execute(self._statements.consume, {"b_id": token_id, "b_now": now})
        return consumed.rowcount == 1

    def issue_successor(
        self,
        conn: Connection,
        row: Any,
        successor_hash: str,
        *,
        now: int,
        expires_at: int,
        access_expires_at: int,
        jkt: str | None = None,
    ) -> bool:
        """Record the refresh on ``row``'s session and insert the successor of
        its consumed token, in ``conn``'s transaction (on PostgreSQL,
        :meth:`claim` does both in its one statement).

        :param access_expires_at: the ``exp`` of the access token that will be
            issued with the successor; recorded with the session.
        :param jkt: bind the session to this DPoP key thumbprint if it is unbound.
        :returns: ``False`` when the session was revoked meanwhile (nothing was
            written; the caller must roll back: revoke wins).
        """
        statements = self._statements
        params = {
            "b_session": row.session_id,
            "b_now": now,
            "b_access": access_expires_at,
            "b_jkt": jkt,
        }
        if conn.execute(statements.touch, params).rowcount != 1:
            return False
        columns = {"token_hash": successor_hash, "session_id": row.session_id}
        columns.update(parent_id=row.id, created_at=now, expires_at=expires_at)
        conn.execute(statements.insert, columns)
        return True

    def child_of(self, parent_id: int, token_hash: str) -> Any:
        """The token ``token_hash`` if it is the successor of ``parent_id`` in a
        live (unrevoked) session: a row with ``used_at`` and ``expires_at``, or
        ``None``."""
        with self.read() as conn:
            params = {"b_hash": token_hash, "b_parent": parent_id}
            return conn.execute(self._statements.child, params).first()

    def extend_access(self, session_id: str, access_expires_at: int) -> bool:
        """Record an access token expiring at ``access_expires_at`` for a live session.

        :returns: ``False`` when the session is revoked: issue no token then.
        """
        params = {"b_session": session_id, "b_access": access_expires_at}
        with self.begin() as conn:
            return conn.execute(self._statements.extend_access, params).rowcount == 1

    def revocation(self, now: int, reason: str) -> Any:
        """The ``UPDATE`` that revokes sessions at ``now``; add its ``WHERE``."""
        s = self.tables.sessions
        return revoke_statement(s, now, reason, self.access_lifetime, self.legacy_access_lifetime)

    def revoke_session(
        self, session_id: str, reason: str, *, now: int, identity: str | None = None
    ) -> bool:
        """Revoke one session; with ``identity``, only if it is that user's.

        :returns: whether a live session was revoked.
        """
        s = self.tables.sessions
        query = self.revocation(now, reason).where(s.c.id == session_id, s.c.revoked_at.is_(None))
        if identity is not None:
            query = query.where(s.c.identity == identity)
        with self.begin() as conn:
            done = bool(conn.execute(query).rowcount)
            notify(conn, CHANNEL, encode([session_id] if done else [], now), self.announce)
            return done

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
            revoke = self.revocation(now, reason)
            conn.execute(revoke.where(s.c.id.in_(ids), s.c.revoked_at.is_(None)))
            notify(conn, CHANNEL, encode(ids, now), self.announce)
        return ids

    def session_of_refresh_token(self, token: str) -> tuple[str, str, str | None] | None:
        """``(session_id, identity, dpop_jkt)`` of a refresh token, or ``None``."""
        s, t = self.tables.sessions, self.tables.refresh_tokens
        with self.read() as conn:
            row = conn.execute(
                select(s.c.id, s.c.identity, s.c.dpop_jkt)
                .join(t, t.c.session_id == s.c.id)
                .where(t.c.token_hash == hash_refresh_token(token))
            ).first()
        return (row.id, row.identity, row.dpop_jkt) if row is not None else None

    def list_sessions(self, identity: str, *, now: int) -> list[SessionInfo]:
        """The live sessions of ``identity``, newest first."""
        s, t = self.tables.sessions, self.tables.refresh_tokens
        with self.read() as conn:
            rows = conn.execute(
                select(s).where(live(s, identity, now)).order_by(*newest_first(s, t))
            ).all()
        return [
            SessionInfo(
                r.id,
                r.created_at,
                r.last_used_at,
                r.expires_at,
                r.ip,
                r.user_agent,
                dpop_bound=r.dpop_jkt is not None,
            )
            for r in rows
        ]

    def revoked_sessions(self, horizon: int) -> list[tuple[str, int]]:
        """``(session_id, kept_until)`` of the revoked sessions whose access
        tokens may be unexpired at ``horizon``: ``kept_until >= horizon``.

        ``kept_until`` is the latest access-token expiry recorded when the
        session was revoked; for a session revoked before 0.2, the expiry
        assumed from its last use (``legacy_access_lifetime``).
        """
        s, lifetime = self.tables.sessions, self.legacy_access_lifetime
        assumed = assumed_access_expiry(s, lifetime)
        query = union_all(
            select(s.c.id, s.c.revocation_kept_until.label("kept_until")).where(
                s.c.revocation_kept_until >= horizon
            ),
            select(s.c.id, assumed.label("kept_until")).where(
                s.c.revocation_kept_until.is_(None),
                s.c.revoked_at >= horizon - lifetime,  # last_used_at <= revoked_at
                assumed >= horizon,
            ),
        )
        with self.read() as conn:
            return [(r.id, int(r.kept_until)) for r in conn.execute(query)]

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

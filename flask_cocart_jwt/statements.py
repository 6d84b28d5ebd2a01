"""The SQL statements of :mod:`flask_cocart_jwt.store`, and the expressions they share.

Kept apart from the store so that each stays small: this module builds
statements and runs none of them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    String,
    and_,
    bindparam,
    case,
    func,
    insert,
    literal,
    select,
    update,
)

from .models import Tables


class Statements:
    """The statements of a refresh, built once per store with bound parameters.

    Building a statement costs more than running it on SQLite: built once,
    SQLAlchemy also reuses its cache key and compiled form.
    """

    def __init__(self, tables: Tables) -> None:
        s, t = tables.sessions, tables.refresh_tokens
        self.token_row = (
            select(t.c.id, t.c.session_id, t.c.expires_at, t.c.used_at, *session_columns(s))
            .join(s, s.c.id == t.c.session_id)
            .where(t.c.token_hash == bindparam("b_hash"))
        )
        self.consume = (
            update(t)
            .where(t.c.id == bindparam("b_id"), t.c.used_at.is_(None))
            .values(used_at=bindparam("b_now"))
        )
        # PostgreSQL: consume by hash and return the row of token_row (used_at:
        # now), in one statement.
        self.claim = (
            update(t)
            .where(
                t.c.token_hash == bindparam("b_hash"),
                t.c.used_at.is_(None),
                s.c.id == t.c.session_id,
            )
            .values(used_at=bindparam("b_now"))
            .returning(t.c.id, t.c.session_id, t.c.expires_at, t.c.used_at, *session_columns(s))
        )
        self.touch = (
            update(s)
            .where(s.c.id == bindparam("b_session"), s.c.revoked_at.is_(None))
            .values(
                last_used_at=bindparam("b_now"),
                access_expires_at=later(s, "b_access"),
                # DPoP: a refresh with a proof binds an unbound session, never rebinds.
                dpop_jkt=func.coalesce(s.c.dpop_jkt, bindparam("b_jkt", type_=String())),
            )
        )
        self.extend_access = (
            update(s)
            .where(s.c.id == bindparam("b_session"), s.c.revoked_at.is_(None))
            .values(access_expires_at=later(s, "b_access"))
        )
        self.insert = insert(t)
        # PostgreSQL: the whole rotation in one statement. The claim as above;
        # the session touched (not if revoked, even meanwhile: its row lock
        # waits for the revocation, then sees it); the successor inserted in
        # the touched session. ``issued`` is 0 when nothing was inserted; the
        # caller checks the claimed row and rolls back to refuse it.
        claimed = self.claim.cte("claimed")
        now = bindparam("b_now", type_=BigInteger())
        access = func.least(
            now + bindparam("b_access_life", type_=BigInteger()), claimed.c.session_expires_at
        )
        rotated_session = (
            update(s)
            .where(s.c.id == claimed.c.session_id, s.c.revoked_at.is_(None))
            .values(
                last_used_at=now,
                access_expires_at=case(
                    (s.c.access_expires_at < access, access), else_=s.c.access_expires_at
                ),
                dpop_jkt=func.coalesce(s.c.dpop_jkt, bindparam("b_jkt", type_=String())),
            )
            .returning(s.c.id)
            .cte("rotated_session")
        )
        inserted = (
            insert(t)
            .from_select(
                ["token_hash", "session_id", "parent_id", "created_at", "expires_at"],
                select(
                    bindparam("b_successor", type_=String()),
                    rotated_session.c.id,
                    claimed.c.id,
                    now,
                    func.least(
                        now + bindparam("b_refresh_life", type_=BigInteger()),
                        claimed.c.session_expires_at,
                    ),
                ).select_from(
                    claimed.join(rotated_session, rotated_session.c.id == claimed.c.session_id)
                ),
            )
            .returning(t.c.id)
            .cte("inserted")
        )
        self.rotate = select(
            *claimed.c,
            select(func.count()).select_from(inserted).scalar_subquery().label("issued"),
        )
        self.child = (
            select(t.c.used_at, t.c.expires_at)
            .join(s, s.c.id == t.c.session_id)
            .where(
                t.c.token_hash == bindparam("b_hash"),
                t.c.parent_id == bindparam("b_parent"),
                s.c.revoked_at.is_(None),
            )
        )


def session_columns(s: Any) -> tuple[Any, ...]:
    """The columns of a session that a refresh reads with its token's row."""
    return (
        s.c.identity,
        s.c.expires_at.label("session_expires_at"),
        s.c.revoked_at,
        s.c.ip,
        s.c.user_agent,
        s.c.dpop_jkt,
    )


def live(s: Any, identity: str, now: int) -> Any:
    """The condition of ``identity``'s live sessions: not revoked, not expired."""
    return and_(s.c.identity == identity, s.c.revoked_at.is_(None), s.c.expires_at > now)


def newest_first(s: Any, t: Any) -> tuple[Any, ...]:
    """Sessions newest first; within one second, by the autoincrement id of
    their first refresh token (the order of creation), never by random id."""
    first_token = select(func.min(t.c.id)).where(t.c.session_id == s.c.id).scalar_subquery()
    return (s.c.created_at.desc(), first_token.desc())


def later(s: Any, name: str) -> Any:
    """``access_expires_at`` moved forward to parameter ``name``, never back.

    A NULL (a session opened before 0.2) stays NULL: its older tokens' expiry
    is unknown, and :func:`assumed_access_expiry` bounds them all.
    """
    new = bindparam(name, type_=BigInteger())
    return case((s.c.access_expires_at < new, new), else_=s.c.access_expires_at)


def assumed_access_expiry(s: Any, lifetime: int) -> Any:
    """The latest access-token expiry assumed for a session opened before 0.2:
    ``lifetime`` seconds after its last use, and never after the session."""
    bound = s.c.last_used_at + literal(lifetime)
    return case((s.c.expires_at < bound, s.c.expires_at), else_=bound)


def revoke_statement(s: Any, now: int, reason: str, access: int, legacy: int) -> Any:
    """An ``UPDATE`` revoking sessions (add the ``WHERE``), kept until the latest
    access token of each session has expired.

    That is the recorded ``access_expires_at``, or later if the session was
    used since without recording it (0.1 during a rolling upgrade): its last
    use plus the access lifetime ``access``. A session opened before 0.2 has
    no record: its last use plus ``legacy`` seconds (see
    :func:`assumed_access_expiry`).
    """
    recorded, recent = s.c.access_expires_at, assumed_access_expiry(s, access)
    kept_until = case(
        (recorded.is_(None), assumed_access_expiry(s, legacy)),
        (recorded < recent, recent),
        else_=recorded,
    )
    return update(s).values(
        revoked_at=now, revoked_reason=reason[:64], revocation_kept_until=kept_until
    )

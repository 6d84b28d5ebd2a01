"""The SQL of the store: statements and clauses on the token tables.

Kept apart from :mod:`flask_cocart_jwt.store`, which decides what to run when.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, bindparam, func, insert, select, update

from .models import Tables


class RotationStatements:
    """The statements of a refresh, built once per store with bound parameters.

    Building a statement costs more than running it on SQLite: built once,
    SQLAlchemy also reuses its cache key and compiled form.
    """

    def __init__(self, tables: Tables) -> None:
        s, t = tables.sessions, tables.refresh_tokens
        self.token_row = (
            select(
                t.c.id,
                t.c.session_id,
                t.c.expires_at,
                t.c.used_at,
                s.c.identity,
                s.c.expires_at.label("session_expires_at"),
                s.c.revoked_at,
                s.c.ip,
                s.c.user_agent,
            )
            .join(s, s.c.id == t.c.session_id)
            .where(t.c.token_hash == bindparam("b_hash"))
        )
        self.consume = (
            update(t)
            .where(t.c.id == bindparam("b_id"), t.c.used_at.is_(None))
            .values(used_at=bindparam("b_now"))
        )
        self.touch = (
            update(s)
            .where(s.c.id == bindparam("b_session"), s.c.revoked_at.is_(None))
            .values(last_used_at=bindparam("b_now"))
        )
        self.insert = insert(t)


def live(s: Any, identity: str, now: int) -> Any:
    return and_(s.c.identity == identity, s.c.revoked_at.is_(None), s.c.expires_at > now)


def newest_first(s: Any, t: Any) -> tuple[Any, ...]:
    """Sessions newest first; within one second, by the autoincrement id of
    their first refresh token (the order of creation), never by random id."""
    first_token = select(func.min(t.c.id)).where(t.c.session_id == s.c.id).scalar_subquery()
    return (s.c.created_at.desc(), first_token.desc())


def revoke(s: Any, now: int, reason: str) -> Any:
    return update(s).values(revoked_at=now, revoked_reason=reason[:64])

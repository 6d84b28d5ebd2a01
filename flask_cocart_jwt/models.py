"""The token tables: sessions (refresh-token families) and refresh tokens.

The tables are SQLAlchemy Core tables defined on a ``MetaData``: the user's
``db.metadata`` when the extension is given a Flask-SQLAlchemy ``db`` (so that
``db.create_all()`` and Flask-Migrate see them), else a metadata of the
extension's own. Core tables rather than declarative models let one
definition join any number of ``db`` objects, and keep the conditional
updates that make rotation atomic explicit.

Times are integer Unix seconds. Refresh tokens are stored as the SHA-256 of
the token only; the token itself is never written anywhere.

Two columns of the sessions table are new in 0.2 and nullable, so that rows
written by 0.1 stay valid: ``access_expires_at``, the ``exp`` of the latest
access token issued for the session, and ``revocation_kept_until``, set when
the session is revoked: until then, some access token of the session may
still be unexpired, so the revocation check must remember it. A third,
``dpop_jkt``, holds the thumbprint of the DPoP key a session is bound to
(RFC 9449), NULL for an unbound session. See :data:`NEW_SESSION_COLUMNS` and
the upgrade notes in the changelog.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.types import TypeEngine

SESSIONS_TABLE = "cocart_jwt_sessions"
REFRESH_TOKENS_TABLE = "cocart_jwt_refresh_tokens"
#: Columns of the sessions table added after 0.1 (nullable), in the order added.
NEW_SESSION_COLUMNS = ("access_expires_at", "revocation_kept_until", "dpop_jkt")
#: Indexes of the sessions table added after 0.1.
NEW_SESSION_INDEXES = ("ix_cocart_jwt_sessions_revocation",)

_Id = BigInteger().with_variant(Integer, "sqlite")


def _exact(length: int) -> TypeEngine[str]:
    """A string column compared byte for byte on every backend.

    MySQL and MariaDB compare ``VARCHAR`` case-insensitively by default, which
    would let ``alice`` see ``ALICE``'s sessions; a binary collation there.
    """
    binary = mysql.VARCHAR(length, charset="utf8mb4", collation="utf8mb4_bin")
    return String(length).with_variant(binary, "mysql", "mariadb")


@dataclass(frozen=True)
class Tables:
    """The two token tables of one ``MetaData``."""

    sessions: Table
    refresh_tokens: Table


def define_tables(metadata: MetaData) -> Tables:
    """Add the token tables to ``metadata`` (once) and return them."""
    if SESSIONS_TABLE in metadata.tables:
        return Tables(metadata.tables[SESSIONS_TABLE], metadata.tables[REFRESH_TOKENS_TABLE])
    sessions = Table(
        SESSIONS_TABLE,
        metadata,
        Column("id", _exact(32), primary_key=True),
        Column("identity", _exact(255), nullable=False),
        Column("created_at", BigInteger, nullable=False),
        Column("last_used_at", BigInteger, nullable=False),
        Column("expires_at", BigInteger, nullable=False),
        Column("revoked_at", BigInteger, nullable=True),
        Column("revoked_reason", String(64), nullable=True),
        Column("ip", String(45), nullable=True),
        Column("user_agent", String(255), nullable=True),
        # The latest ``exp`` of the session's access tokens; NULL before 0.2.
        Column("access_expires_at", BigInteger, nullable=True),
        # Set on revocation: until when the revocation check must remember it.
        Column("revocation_kept_until", BigInteger, nullable=True),
        # DPoP: the RFC 7638 thumbprint of the key the session is bound to.
        Column("dpop_jkt", String(64), nullable=True),
        Index("ix_cocart_jwt_sessions_identity", "identity", "created_at"),
        Index("ix_cocart_jwt_sessions_revoked_at", "revoked_at"),
        Index("ix_cocart_jwt_sessions_expires_at", "expires_at"),
        Index("ix_cocart_jwt_sessions_revocation", "revocation_kept_until", "revoked_at"),
    )
    refresh_tokens = Table(
        REFRESH_TOKENS_TABLE,
        metadata,
        Column("id", _Id, primary_key=True, autoincrement=True),
        Column("token_hash", _exact(64), nullable=False, unique=True),
        Column(
            "session_id",
            _exact(32),
            ForeignKey(f"{SESSIONS_TABLE}.id", ondelete="CASCADE"),
            nullable=False,
        ),
        Column("parent_id", _Id, nullable=True),
        Column("created_at", BigInteger, nullable=False),
        Column("expires_at", BigInteger, nullable=False),
        Column("used_at", BigInteger, nullable=True),
        Index("ix_cocart_jwt_refresh_tokens_session_id", "session_id"),
    )
    return Tables(sessions, refresh_tokens)

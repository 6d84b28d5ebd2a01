"""``watch_user_model``: revoke a user's sessions when their credentials change.

SQLAlchemy mapper events on the user's model revoke the sessions of a user
whose watched columns (password, email) change, or whose row is deleted: the
Flask counterpart of CoCart's password-change and user-deletion triggers.

When the token tables live in the user's database (``CoCartJWT(db=db)``) the
revocation runs on the flush's own connection, so it commits, or rolls back,
with the user's change; the process's revocation view and the
``session_revoked`` signal follow only once the session commits. With the
embedded database it is written at once in a transaction of its own (a
rolled-back change then still logs the user out, which errs on the safe side).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from flask import current_app
from sqlalchemy import event, inspect
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session, object_session

from .service import Service

#: ``Session.info`` key of the notifications waiting for the session's commit.
_PENDING = "cocart_jwt_pending_revocations"


def watch_model(
    current_service: Callable[[], Service],
    model: type[Any],
    identity_attr: str,
    revoke_on: tuple[str, ...],
    revoke_on_delete: bool,
) -> None:
    """Listen to ``model``'s updates and deletes; see ``CoCartJWT.watch_user_model``.

    :param current_service: returns the service of the current app, at the
        time of each change.
    """
    mapper = inspect(model)
    missing = [name for name in (identity_attr, *revoke_on) if name not in mapper.attrs]
    if missing:
        raise AttributeError(
            f"{model.__name__} has no attribute {', '.join(missing)}; "
            "check identity_attr and revoke_on."
        )

    def revoke(connection: Connection, target: Any, reason: str) -> None:
        service = current_service()
        store = service.store
        # When the identity column itself changed, the sessions belong to the
        # old value: revoke both.
        history = inspect(target).attrs[identity_attr].history
        identities = {str(v) for v in (*history.deleted, getattr(target, identity_attr))}
        now = int(time.time())
        same_db = not store.embedded and connection.engine.url == store.engine.url
        ids = [
            sid
            for identity in sorted(identities)
            for sid in store.revoke_user(
                identity, reason, now=now, conn=connection if same_db else None
            )
        ]
        if not ids:
            return
        session = object_session(target) if same_db else None
        if session is None:
            service.notify_revoked(ids, reason, now)
            return
        app = current_app._get_current_object()  # type: ignore[attr-defined]

        def notify() -> None:
            with app.app_context():
                service.notify_revoked(ids, reason, now)

        session.info.setdefault(_PENDING, []).append(notify)

    def after_update(_mapper: Any, connection: Connection, target: Any) -> None:
        attrs = inspect(target).attrs
        if any(attrs[name].history.has_changes() for name in revoke_on):
            revoke(connection, target, "credentials_changed")

    def after_delete(_mapper: Any, connection: Connection, target: Any) -> None:
        revoke(connection, target, "user_deleted")

    if not event.contains(Session, "after_commit", _after_commit):
        event.listen(Session, "after_commit", _after_commit)
        event.listen(Session, "after_rollback", _after_rollback)
    event.listen(model, "after_update", after_update)
    if revoke_on_delete:
        event.listen(model, "after_delete", after_delete)


def _after_commit(session: Session) -> None:
    """The user's change is committed: tell the process and the signal."""
    pending: list[Callable[[], None]] = session.info.pop(_PENDING, [])
    for notify in pending:
        notify()


def _after_rollback(session: Session) -> None:
    """The user's change, and the revocation with it, was rolled back."""
    session.info.pop(_PENDING, None)

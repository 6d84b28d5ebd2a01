"""Revocations pushed to every worker: PostgreSQL ``LISTEN/NOTIFY`` or Redis pub/sub.

Each worker's revocation view (:mod:`flask_cocart_jwt.revocation`) polls the
database every half second; a push makes another worker's revocation known
within milliseconds instead, and polling stays as the fallback. Which way a
revocation travels depends on the deployment:

- **PostgreSQL** (with the psycopg 3 driver): the store sends ``NOTIFY`` in
  the transaction that revokes (:meth:`~flask_cocart_jwt.store.Store.revoke_session`
  and the others), so the message leaves exactly when, and only if, the
  revocation commits. Every worker ``LISTEN`` s on a connection of its own.
- **Redis**, when ``COCART_JWT_RATELIMIT_STORAGE_URI`` is a ``redis://``,
  ``rediss://`` or ``redis+unix://`` URL (``valkey`` too) and the token tables
  are not on PostgreSQL with psycopg 3: the path of MariaDB and SQLite
  deployments. The revocation is published after its transaction commits;
  every worker subscribes to the channel of that Redis database number.
- Otherwise (another PostgreSQL driver without Redis, Redis Sentinel or
  Cluster, no Redis): polling only.

A message carries session ids and the revocation time, never a token; it can
only add revocations, so a forged one can log users out but never in. The
listening side (reconnects, heartbeats, healing after a reconnect) is in
:mod:`flask_cocart_jwt.revocation`; this module holds the two transports.
"""

from __future__ import annotations

import logging
import re
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol
from urllib.parse import urlsplit

from .database import dedicated_connection
from .forks import PerProcess

logger = logging.getLogger(__name__)

#: The PostgreSQL channel (one per database: the token tables are too).
CHANNEL = "cocart_jwt_revocations"
#: Session ids per message: a ``NOTIFY`` payload must stay under 8000 bytes.
MAX_IDS_PER_MESSAGE = 200
#: Seconds the listener waits for Redis before giving up on one operation.
REDIS_TIMEOUT = 2.0
#: Seconds a revoking request waits for Redis to publish (as long as a rate
#: limit waits for its storage): a Redis outage must not hold revocations.
PUBLISH_TIMEOUT = 0.5
#: The longest a Redis subscription waits in one call: how quickly it stops.
_REDIS_SLICE = 0.25
_SESSION_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")
_REDIS_SCHEMES = {
    "redis": "redis",
    "rediss": "rediss",
    "redis+unix": "unix",
    "valkey": "redis",
    "valkeys": "rediss",
    "valkey+unix": "unix",
}


def encode(session_ids: list[str], revoked_at: int) -> Iterator[str]:
    """The messages announcing ``session_ids`` revoked at ``revoked_at``."""
    for start in range(0, len(session_ids), MAX_IDS_PER_MESSAGE):
        yield " ".join([str(revoked_at), *session_ids[start : start + MAX_IDS_PER_MESSAGE]])


def decode(payload: object) -> tuple[list[str], int] | None:
    """``(session_ids, revoked_at)`` of a message; ``None`` for anything malformed."""
    if isinstance(payload, bytes):
        try:
            payload = payload.decode("ascii")
        except UnicodeDecodeError:
            return None
    if not isinstance(payload, str) or len(payload) > 16_000:
        return None
    at, *ids = payload.split(" ")
    if not at.isdigit() or len(at) > 12 or not ids:
        return None
    if not all(_SESSION_ID.fullmatch(sid) for sid in ids):
        return None
    return ids, int(at)


class Subscription(Protocol):
    """One connection that receives the revocation messages."""

    def check(self) -> None:
        """One round trip that proves the connection alive; raises if it is not.

        Every message sent before the check was received when it returns.
        """
        ...

    def wait(self, timeout: float) -> list[str]:
        """The messages received, as soon as there are some, or ``[]`` after
        ``timeout`` seconds or when asked to stop. Raises if the connection is lost."""
        ...

    def close(self) -> None:
        """Close the connection."""
        ...


class Push:
    """How the revocations of one app reach its other workers.

    :param engine: returns the store's engine; its dialect decides the way
        (read once, when first needed in a process), and PostgreSQL's
        listening connection comes from it.
    :param redis_url: the rate-limit storage URL (used if it is a Redis one).
    """

    def __init__(self, engine: Callable[[], Any], redis_url: str | None) -> None:
        self._engine = engine
        self._redis_url = redis_url if redis_target(redis_url) is not None else None
        self._way: str | None = None
        self._publisher = PerProcess(lambda: self._redis_client(PUBLISH_TIMEOUT))

    @property
    def way(self) -> str:
        """``"postgresql"``, ``"redis"`` or ``"poll"`` (no push)."""
        if self._way is None:
            dialect = self._engine().dialect
            dialect, driver = dialect.name, dialect.driver
            if dialect == "postgresql" and driver == "psycopg":
                self._way = "postgresql"
            elif self._redis_url is not None and _has_redis():
                self._way = "redis"
            else:
                self._way = "poll"
        return self._way

    def publish(self, session_ids: list[str], revoked_at: int) -> None:
        """Tell the other workers, after the revocation committed (Redis only).

        On PostgreSQL the store notified in the revocation's transaction
        already. A failure is logged, never raised: the revocation is made,
        and the other workers' polls will see it.
        """
        if not session_ids or self.way != "redis":
            return
        try:
            client = self._publisher.get()
            for message in encode(session_ids, revoked_at):
                client.publish(self.redis_channel, message)
        except Exception:
            logger.warning(
                "Could not publish a revocation to Redis; other workers will see it "
                "at their next poll",
                exc_info=True,
            )

    @property
    def redis_channel(self) -> str:
        """The Redis channel: one per Redis database number, as the limits' keys are."""
        target = redis_target(self._redis_url)
        return f"cocart_jwt:revocations:{target[1] if target else 0}"

    def subscribe(self, stop: threading.Event, wake: socket.socket) -> Subscription:
        """A new connection that receives the messages.

        :param stop: set when the subscription must stop waiting.
        :param wake: a socket that becomes readable then, too.
        """
        if self.way == "postgresql":
            return _PostgresSubscription(dedicated_connection(self._engine()), wake)
        return _RedisSubscription(self._redis_client(REDIS_TIMEOUT), self.redis_channel, stop)

    def close(self) -> None:
        """Close this process's Redis connection, if any (it reconnects on next use)."""
        client = self._publisher.value
        if client is not None:
            client.close()

    def _redis_client(self, timeout: float) -> Any:
        import redis

        target = redis_target(self._redis_url)
        assert target is not None
        return redis.Redis.from_url(
            target[0], socket_timeout=timeout, socket_connect_timeout=timeout
        )


def redis_target(url: str | None) -> tuple[str, int] | None:
    """The URL redis-py understands and the database number, for a Redis URL.

    ``None`` for anything else (``memory://``, Sentinel, Cluster...).
    """
    if not url:
        return None
    scheme, sep, rest = url.partition("://")
    mapped = _REDIS_SCHEMES.get(scheme)
    if not sep or mapped is None:
        return None
    target = f"{mapped}://{rest}"
    parts = urlsplit(target)
    db = parts.path.strip("/") if mapped != "unix" else ""
    if mapped == "unix":
        match = re.search(r"(?:^|[?&])db=(\d+)", parts.query)
        db = match.group(1) if match else ""
    return target, int(db) if db.isdigit() else 0


def _has_redis() -> bool:
    try:
        import redis  # noqa: F401
    except ImportError:  # pragma: no cover - redis is a dev dependency
        logger.warning("COCART_JWT_RATELIMIT_STORAGE_URI is Redis but redis is not installed")
        return False
    return True


class _PostgresSubscription:
    """``LISTEN`` on a psycopg 3 connection of its own, outside the pool.

    Notifications reach :meth:`_on_notify` whenever psycopg reads from the
    connection; waiting is a ``select`` on its socket (and on the wake pipe),
    then one ``SELECT 1`` that reads what arrived.
    """

    def __init__(self, conn: Any, wake: socket.socket) -> None:
        self._conn = conn
        self._wake = wake
        self._received: list[str] = []
        try:
            conn.autocommit = True
            conn.add_notify_handler(self._on_notify)
            conn.execute(f'LISTEN "{CHANNEL}"')
        except BaseException:
            conn.close()
            raise

    def _on_notify(self, notify: Any) -> None:
        if notify.channel == CHANNEL:
            self._received.append(notify.payload)

    def check(self) -> None:
        self._conn.execute("SELECT 1")

    def wait(self, timeout: float) -> list[str]:
        if not self._received:
            fd = self._conn.fileno()
            readable, _, _ = select.select([fd, self._wake], [], [], max(0.0, timeout))
            if fd not in readable:
                return []
            self.check()
        received, self._received = self._received, []
        return received

    def close(self) -> None:
        try:
            self._conn.close()
        except Exception:  # already broken
            logger.debug("Closing the LISTEN connection failed", exc_info=True)


class _RedisSubscription:
    """A Redis pub/sub subscription on a connection of its own."""

    def __init__(self, client: Any, channel: str, stop: threading.Event) -> None:
        self._client = client
        self._stop = stop
        self._pending: list[str] = []
        self._pubsub = client.pubsub(ignore_subscribe_messages=False)
        try:
            self._pubsub.subscribe(channel)
            # Wait for the confirmation: the subscription is then in place.
            self._until(lambda message: message["type"] == "subscribe")
        except BaseException:
            self.close()
            raise

    def _until(self, done: Callable[[dict[str, Any]], bool]) -> None:
        """Read messages (keeping revocations) until ``done`` says so, or fail."""
        deadline = time.monotonic() + REDIS_TIMEOUT
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ConnectionError("Redis did not answer the revocation subscription")
            message = self._pubsub.get_message(timeout=min(_REDIS_SLICE, remaining))
            if message is None:
                continue
            if message["type"] == "message":
                self._pending.append(message["data"])
            if done(message):
                return

    def check(self) -> None:
        self._pubsub.ping()
        self._until(lambda message: message["type"] == "pong")

    def wait(self, timeout: float) -> list[str]:
        deadline = time.monotonic() + timeout
        while not self._pending and not self._stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            message = self._pubsub.get_message(timeout=min(_REDIS_SLICE, remaining))
            if message is not None and message["type"] == "message":
                self._pending.append(message["data"])
        received, self._pending = self._pending, []
        return received

    def close(self) -> None:
        try:
            self._pubsub.close()
            self._client.close()
        except Exception:  # already broken
            logger.debug("Closing the Redis subscription failed", exc_info=True)

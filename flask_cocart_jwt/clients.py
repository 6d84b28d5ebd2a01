"""The client of a request, as kept with its session."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Client:
    """The client of a request, as kept with its session: address and user agent."""

    ip: str | None = None
    user_agent: str | None = None

    @property
    def stored_ip(self) -> str | None:
        """The address as kept with a session: cut to the column's 45 characters.

        45 is the longest textual IPv6 address; a longer value (an IPv6 zone
        id, or whatever a proxy middleware put in ``REMOTE_ADDR``) is compared
        cut too.
        """
        return (self.ip or "")[:45] or None

    @property
    def stored_user_agent(self) -> str | None:
        """The ``User-Agent`` as kept with a session.

        NUL bytes are dropped (PostgreSQL refuses them in text) and the rest
        is cut to the column's 255 characters.
        """
        return (self.user_agent or "").replace("\x00", "")[:255] or None

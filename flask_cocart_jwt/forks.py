"""Per-process values: what a forked worker must not inherit from its parent.

A gunicorn worker forked from a ``--preload`` master inherits its parent's
objects, but a database connection pool, a lock held by another thread, or a
background thread do not survive a fork. :class:`PerProcess` holds one such
value and makes a new one in each forked child, on first use. Forks are seen
through :func:`os.register_at_fork`, so the check on the hot path is one
attribute read, with no system call.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class PerProcess(Generic[T]):
    """A value made on first use in each process.

    :param create: makes the value; called at most once per process, under
        a lock.
    :param discard: called in a forked child with the parent's value before
        the child makes its own (e.g. to drop inherited connections without
        closing the parent's).
    """

    def __init__(self, create: Callable[[], T], discard: Callable[[T], None] | None = None) -> None:
        self._create = create
        self._discard = discard
        self._lock = threading.Lock()
        self._inherited: T | None = None
        #: The value of this process, or ``None`` before its first use. Hot
        #: paths read it directly and call :meth:`get` only when it is ``None``.
        self.value: T | None = None
        _instances.add(self)

    def get(self) -> T:
        """The value of this process, made now if this is its first use here."""
        value = self.value
        if value is not None:
            return value
        with self._lock:
            if self.value is None:
                inherited, self._inherited = self._inherited, None
                if inherited is not None and self._discard is not None:
                    self._discard(inherited)
                self.value = self._create()
            return self.value

    def after_fork(self) -> None:
        """Forget the parent's value; called in a forked child, before anything else."""
        self._lock = threading.Lock()
        if self.value is not None:
            self._inherited, self.value = self.value, None


_instances: weakref.WeakSet[PerProcess[Any]] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for instance in list(_instances):
        instance.after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)

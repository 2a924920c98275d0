"""Read-your-writes: which committed write a read must see, per scope.

A scope is a client's requests (``ReadYourWritesMiddleware``), a job, or any block in
``DatabaseManager.read_your_writes()``; outside every scope the whole manager is one scope.
Each scope keeps a :class:`WriteMark`: the primary's WAL position after its newest commit. A
read-only session of the scope uses a replica only once that replica has replayed that
position, so the scope never reads a state older than its own writes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar


class WriteMark:
    """The newest write of one scope: a WAL position, or "unknown until" a time."""

    __slots__ = ("lsn", "primary_until")

    def __init__(self) -> None:
        self.lsn = 0
        """The primary's WAL insert position right after the scope's newest commit (bytes)."""
        self.primary_until = 0.0
        """``time.monotonic()`` before which reads go to the primary: the position of a
        commit could not be read, so the primary is the only place sure to hold it."""

    def record(self, lsn: int) -> None:
        """Remember a commit that ended at WAL position ``lsn``."""
        self.lsn = max(self.lsn, lsn)

    def record_unknown(self, seconds: float) -> None:
        """Remember a commit whose position is unknown: read on the primary for ``seconds``."""
        self.primary_until = max(self.primary_until, time.monotonic() + seconds)

    def needs_primary(self) -> bool:
        """Whether only the primary is sure to hold this scope's writes right now."""
        return self.primary_until > time.monotonic()


class ReadYourWrites:
    """The scopes of one manager: a context variable, and the manager-wide scope outside it."""

    def __init__(self, name: str) -> None:
        self._scope: ContextVar[WriteMark | None] = ContextVar(name, default=None)
        self._outside = WriteMark()

    def current(self) -> WriteMark:
        """The mark of the innermost open scope, or the manager-wide one."""
        return self._scope.get() or self._outside

    @contextmanager
    def scope(self, mark: WriteMark | None = None) -> Iterator[None]:
        """Open a scope that starts with ``mark`` (none: no writes); reset when the block ends.

        The variable holds a mutable mark, so the tasks and threads the scope starts (which
        copy the context, hence the reference) add their commits to the scope's own mark.
        ``mark`` carries writes from elsewhere into the scope: a client's earlier request.
        """
        token = self._scope.set(mark if mark is not None else WriteMark())
        try:
            yield
        finally:
            self._scope.reset(token)

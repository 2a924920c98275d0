"""LogLines: an aegis-log output that keeps the lines for a test, which may wait for them.

A server under test (:func:`~aegis.testing.uvicorn_server`) logs from its own thread, and an
access line is written just after the response it describes is sent: a test that has read the
response must wait for the line. No import of aegis-log: it is an output by shape (the
``LogOutput`` protocol: ``write(entry)`` and ``close()``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any, Protocol


class _Entry(Protocol):
    @property
    def event(self) -> Mapping[str, Any]: ...


class LogLines:
    """Collects the lines of an aegis-log configuration, from any thread.

    Args:
        logger: keep only the lines of this logger (``"aegis.access"``); all when ``None``.

    Example:
        >>> lines = LogLines("aegis.access")
        >>> configure_logging(LogSettings(console=None), outputs=[lines])
        >>> ...  # requests carrying X-Request-ID r-1 and r-2
        >>> first, second = lines.wait_for("request_id", ["r-1", "r-2"])
    """

    def __init__(self, logger: str | None = None) -> None:
        self._logger = logger
        self._lines: list[dict[str, Any]] = []
        self._changed = threading.Condition()

    def write(self, entry: _Entry) -> None:
        """Keep one line (called by aegis-log, on the thread that logged)."""
        if self._logger is None or entry.event.get("logger") == self._logger:
            with self._changed:
                self._lines.append(dict(entry.event))
                self._changed.notify_all()

    def close(self) -> None:
        """Nothing to release."""

    @property
    def lines(self) -> list[dict[str, Any]]:
        """A copy of the lines kept so far, oldest first."""
        with self._changed:
            return list(self._lines)

    def wait_for(
        self, field: str, values: Iterable[object], *, timeout: float = 30.0
    ) -> list[dict[str, Any]]:
        """The first line whose ``field`` is each of ``values`` (hashable), in that order.

        Returns once every one of them came.

        Raises:
            TimeoutError: some did not come within ``timeout`` seconds (the message names them).
        """
        wanted = list(values)
        remaining = set(wanted)
        lines: dict[object, dict[str, Any]] = {}
        scanned = 0

        def all_came() -> bool:  # each wake-up reads only the lines that are new
            nonlocal scanned
            for line in self._lines[scanned:]:
                value = line.get(field)
                if value in remaining:
                    remaining.discard(value)
                    lines[value] = line
            scanned = len(self._lines)
            return not remaining

        with self._changed:
            if not self._changed.wait_for(all_came, timeout):
                missing = [value for value in wanted if value in remaining]
                raise TimeoutError(f"no line with {field} in {missing} within {timeout} s")
        return [lines[value] for value in wanted]

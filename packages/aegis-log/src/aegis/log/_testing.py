"""capture_logs: the lines a block logged, for the tests of code that logs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from aegis.log._configure import attach_output, detach_output
from aegis.log._pipeline import LogEntry


class _Capture:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def write(self, entry: LogEntry) -> None:
        self.events.append(entry.event)

    def close(self) -> None:
        return None


@contextmanager
def capture_logs() -> Iterator[list[dict[str, Any]]]:
    """Collect the lines logged inside the block, as the dicts outputs receive (masked).

    Levels apply as configured, and the lines still go to the configured outputs too; a
    ``configure_logging`` call inside the block keeps the capture.

    Examples:
        >>> with capture_logs() as events:
        ...     get_logger("shop").warning("card declined", card="4111 1111 1111 1111")
        >>> events[0]["card"]
        '***'
    """
    capture = _Capture()
    key = f"capture-{id(capture)}"
    attach_output(key, capture)
    try:
        yield capture.events
    finally:
        detach_output(key)

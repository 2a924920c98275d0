"""Helpers for tests: the lines a block logged, and logging configured for one block only."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import structlog

from aegis.log._configure import attach_output, configure_logging, detach_output, shutdown_logging
from aegis.log._pipeline import LogEntry, LogOutput

if TYPE_CHECKING:  # the settings models load on first use (test_imports.py)
    from aegis.log._settings import LogSettings


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


@contextmanager
def configured_logging(
    settings: LogSettings, *, outputs: Sequence[LogOutput] = ()
) -> Iterator[None]:
    """Run the block with :func:`~aegis.log.configure_logging` in force, then undo it.

    For tests that need the application's logging (a server under test writing its access
    lines into an output the test reads): afterwards the outputs are shut down and the
    process's logging is as it was before — the root logger's handlers and level, the
    handlers and ``propagate`` of the loggers ``settings.adopt_loggers`` names, structlog's
    defaults — so later tests see no trace of it.

    Example:
        >>> with configured_logging(LogSettings(console=None), outputs=[lines]):
        ...     serve_and_check(lines)
    """
    root = logging.getLogger()
    saved = [(root, list(root.handlers), root.propagate, root.level)]
    for name in settings.adopt_loggers:
        adopted = logging.getLogger(name)
        saved.append((adopted, list(adopted.handlers), adopted.propagate, adopted.level))
    configure_logging(settings, outputs=outputs)
    try:
        yield
    finally:
        shutdown_logging()
        for logger, handlers, propagate, level in saved:
            logger.handlers[:] = handlers
            logger.propagate = propagate
            logger.setLevel(level)
        structlog.reset_defaults()

"""AegisLogger: structlog's bound logger API over the aegis pipeline, with per-name levels."""

from __future__ import annotations

import logging
import sys
from typing import Any

from structlog import BoundLoggerBase

from aegis.log._pipeline import PIPELINE, level_name, merged_fields

_DEBUG = logging.DEBUG
_INFO = logging.INFO
_WARNING = logging.WARNING
_ERROR = logging.ERROR
_CRITICAL = logging.CRITICAL


class LoggerHandle:
    """What an :class:`AegisLogger` wraps: its name and the stdlib logger that holds its level.

    Levels live in stdlib ``logging`` so that ``set_level("sqlalchemy.engine", ...)`` governs
    lines from both APIs, and ``Logger.isEnabledFor`` caches the answer per level.
    """

    __slots__ = ("gate", "name")

    def __init__(self, name: str | None = None, *_args: object) -> None:
        self.name = name or "root"
        self.gate = logging.getLogger(name)

    def __repr__(self) -> str:
        return f"<LoggerHandle {self.name}>"


class AegisLogger(BoundLoggerBase):
    """A structlog bound logger: ``bind``/``unbind``/``new`` plus one method per level.

    A call below the logger's level returns at once. Positional arguments format the message
    the stdlib way (``log.info("user %s", 42)``); keyword arguments become fields.
    ``exc_info=True`` (or an exception) attaches a structured stack trace.

    Example:
        >>> log = get_logger(__name__).bind(order_id=7)
        >>> log.info("order paid", amount=12.5)
    """

    _logger: LoggerHandle

    def _emit(self, level: int, event: object, args: tuple[object, ...], kw: Any) -> None:
        if args and isinstance(event, str):
            try:
                event = event % args
            except (TypeError, ValueError):  # wrong placeholders: keep both, lose nothing
                kw = {**kw, "args": args}
        PIPELINE.emit(
            self._logger.name, level, level_name(level), merged_fields(self._context, kw, event)
        )

    def debug(self, event: object = None, *args: object, **kw: Any) -> None:
        """Log at DEBUG."""
        if self._logger.gate.isEnabledFor(_DEBUG):
            self._emit(_DEBUG, event, args, kw)

    def info(self, event: object = None, *args: object, **kw: Any) -> None:
        """Log at INFO."""
        if self._logger.gate.isEnabledFor(_INFO):
            self._emit(_INFO, event, args, kw)

    def warning(self, event: object = None, *args: object, **kw: Any) -> None:
        """Log at WARNING."""
        if self._logger.gate.isEnabledFor(_WARNING):
            self._emit(_WARNING, event, args, kw)

    warn = warning

    def error(self, event: object = None, *args: object, **kw: Any) -> None:
        """Log at ERROR."""
        if self._logger.gate.isEnabledFor(_ERROR):
            self._emit(_ERROR, event, args, kw)

    def exception(self, event: object = None, *args: object, **kw: Any) -> None:
        """Log at ERROR with the exception being handled as a structured stack trace."""
        if self._logger.gate.isEnabledFor(_ERROR):
            kw.setdefault("exc_info", True)
            self._emit(_ERROR, event, args, kw)

    def critical(self, event: object = None, *args: object, **kw: Any) -> None:
        """Log at CRITICAL."""
        if self._logger.gate.isEnabledFor(_CRITICAL):
            self._emit(_CRITICAL, event, args, kw)

    fatal = critical

    def log(self, level: int, event: object = None, *args: object, **kw: Any) -> None:
        """Log at a stdlib level number."""
        if self._logger.gate.isEnabledFor(level):
            self._emit(level, event, args, kw)

    def is_enabled_for(self, level: int) -> bool:
        """Whether a line at ``level`` would be written (the stdlib ``isEnabledFor``)."""
        return self._logger.gate.isEnabledFor(level)

    @property
    def name(self) -> str:
        """The logger name lines carry as ``logger``."""
        return self._logger.name


def _caller_module() -> str:
    return str(sys._getframe(2).f_globals.get("__name__", "root"))


def get_logger(name: str | None = None, **initial_fields: Any) -> AegisLogger:
    """Return a logger named ``name`` (the calling module's ``__name__`` when left out).

    Loggers can be created at import time, before :func:`~aegis.log.configure_logging`: they
    follow whatever configuration is current when they log. Until then, like stdlib logging,
    WARNING and above go to stderr.

    Example:
        >>> log = get_logger()
        >>> log.info("user logged in", user_id=42)
    """
    return AegisLogger(LoggerHandle(name or _caller_module()), [], dict(initial_fields))


def logger_factory(*args: Any) -> LoggerHandle:
    """The structlog ``logger_factory``: ``structlog.get_logger(name)`` gets an aegis logger."""
    return LoggerHandle(args[0] if args and isinstance(args[0], str) else None)

"""configure_logging: one call that sets up structlog, stdlib logging and the outputs."""

from __future__ import annotations

import atexit
import logging
import sys
import threading
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Final

import structlog

from aegis.core.errors import InvalidInputError
from aegis.log._logger import AegisLogger, logger_factory
from aegis.log._outputs import ConsoleOutput, StreamOutput
from aegis.log._pipeline import (
    PIPELINE,
    FieldMasker,
    LogOutput,
    Processor,
    canonical_level_name,
    close_outputs,
)
from aegis.log._stdlib import AegisHandler

if TYPE_CHECKING:
    from aegis.log._settings import LogSettings

# The settings models (pydantic), the file and Elasticsearch outputs are imported where a
# configuration uses them, not with `import aegis.log` (see benchmarks/import_time.py).

_UNCAUGHT_LOGGER: Final = "aegis.uncaught"


class _State:
    """What the last configuration changed, so the next one or shutdown can undo it."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.leveled: set[str] = set()
        self.settings_outputs: tuple[LogOutput, ...] = ()
        self.attached: dict[str, LogOutput] = {}
        self.configured = False
        self.hooks_installed = False
        self.atexit_registered = False


_state = _State()
_UNCONFIGURED: Final[tuple[LogOutput, ...]] = (StreamOutput("stderr"),)
# Before configure_logging (and after shutdown_logging) lines still go somewhere: stderr, at
# the stdlib default level of WARNING, like stdlib's last-resort handler.
PIPELINE.outputs = _UNCONFIGURED


def _build_outputs(settings: LogSettings) -> list[LogOutput]:
    from aegis.core.models import Environment  # lazy: pydantic; LogSettings loaded it here

    outputs: list[LogOutput] = []
    console = settings.console
    if console is not None:
        rendered = console.format
        if rendered == "auto":
            development = settings.environment is Environment.DEVELOPMENT
            rendered = "console" if development else "json"
        outputs.append(
            ConsoleOutput(console.stream, colors=console.colors)
            if rendered == "console"
            else StreamOutput(console.stream)
        )
    if settings.file is not None:
        from aegis.log._file import RotatingFileOutput  # lazy: only when configured

        outputs.append(RotatingFileOutput(settings.file))
    if settings.elasticsearch is not None:
        from aegis.log._elasticsearch import ElasticsearchOutput  # lazy: only when configured

        outputs.append(ElasticsearchOutput(settings.elasticsearch))
    return outputs


def _refresh_outputs() -> None:
    outputs = (*_state.settings_outputs, *_state.attached.values())
    PIPELINE.outputs = outputs if _state.configured else (*_UNCONFIGURED, *outputs)


def attach_output(key: str, output: LogOutput) -> None:
    """Add an output that outlives reconfiguration (Sentry); one per ``key``."""
    with _state.lock:
        previous = _state.attached.pop(key, None)
        _state.attached[key] = output
        _refresh_outputs()
    if previous is not None and previous is not output:
        close_outputs([previous])


def detach_output(key: str) -> None:
    """Remove and close the output attached under ``key``, if any."""
    with _state.lock:
        output = _state.attached.pop(key, None)
        _refresh_outputs()
    if output is not None:
        close_outputs([output])


def _install_stdlib(settings: LogSettings) -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(AegisHandler())
    root.setLevel(settings.level)
    for name in settings.adopt_loggers:
        adopted = logging.getLogger(name)
        if not adopted.handlers and not adopted.propagate:
            # Switched off on purpose (`uvicorn --no-access-log` leaves uvicorn.access so):
            # propagating it to the root handler would turn it back on.
            continue
        for handler in list(adopted.handlers):
            adopted.removeHandler(handler)
        adopted.propagate = True
    for name in _state.leveled - settings.levels.keys():
        logging.getLogger(name).setLevel(logging.NOTSET)
    for name, level in settings.levels.items():
        logging.getLogger(name).setLevel(level)
    _state.leveled = set(settings.levels)


def _log_uncaught(
    exc_type: type[BaseException], exc: BaseException, traceback: TracebackType | None
) -> None:
    if issubclass(exc_type, KeyboardInterrupt):
        sys.__excepthook__(exc_type, exc, traceback)
        return
    logging.getLogger(_UNCAUGHT_LOGGER).critical(
        "uncaught exception", exc_info=(exc_type, exc, traceback)
    )


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_value is None or issubclass(args.exc_type, SystemExit):
        return
    logging.getLogger(_UNCAUGHT_LOGGER).critical(
        "uncaught exception in thread",
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
        extra={"thread_name": args.thread.name if args.thread else None},
    )


def _install_hooks(enabled: bool) -> None:
    if enabled and not _state.hooks_installed:
        sys.excepthook = _log_uncaught
        threading.excepthook = _log_uncaught_in_thread
        _state.hooks_installed = True
    elif not enabled and _state.hooks_installed:
        sys.excepthook = sys.__excepthook__
        threading.excepthook = threading.__excepthook__
        _state.hooks_installed = False


def configure_logging(
    settings: LogSettings | None = None,
    *,
    outputs: Sequence[LogOutput] = (),
    processors: Sequence[Processor] = (),
) -> None:
    """Set up logging for the application; calling it again replaces the configuration.

    After it, native loggers (:func:`~aegis.log.get_logger`, ``structlog.get_logger()``) and
    stdlib loggers write the same lines: JSON in production, coloured text in development,
    with timestamp, level, logger, the request context, OpenTelemetry ids and masked fields.
    The root logger gets one aegis handler and no other; the loggers in
    ``settings.adopt_loggers`` (uvicorn, gunicorn) lose their own handlers, except one left
    with no handler and no propagation (``uvicorn --no-access-log``): it stays off. Outputs of the
    previous configuration are flushed and closed. Libraries must never call this.

    Args:
        settings: levels, outputs, masking; ``LogSettings()`` when left out.
        outputs: more outputs besides the ones ``settings`` describes.
        processors: structlog processors run on each event's fields before masking. The
            first argument they get is the logger name.
    """
    if settings is None:
        from aegis.log._settings import LogSettings  # lazy: the settings models (pydantic)

        settings = LogSettings()
    with _state.lock:
        previous = _state.settings_outputs
        _state.settings_outputs = (*_build_outputs(settings), *outputs)
        PIPELINE.processors = tuple(processors)
        PIPELINE.mask_fields = FieldMasker(
            settings.sensitive_keys, settings.mask, settings.mask_pii
        )
        PIPELINE.max_line_bytes = settings.max_line_bytes
        PIPELINE.service_name = settings.service_name
        PIPELINE.trace_ids = settings.trace_ids
        _state.configured = True
        _refresh_outputs()
        _install_stdlib(settings)
        _install_hooks(settings.capture_uncaught)
        structlog.configure(
            wrapper_class=AegisLogger,
            logger_factory=logger_factory,
            processors=[],
            context_class=dict,
            cache_logger_on_first_use=True,
        )
        if not _state.atexit_registered:
            atexit.register(shutdown_logging)
            _state.atexit_registered = True
    close_outputs(previous, keep=_state.settings_outputs)


def set_level(level: str | int, name: str | None = None) -> None:
    """Change the level of logger ``name`` (the root logger when left out) at run time.

    Applies at once to native and stdlib lines from that logger and from its children that
    have no level of their own.

    Raises:
        InvalidInputError: ``level`` is not a level name or number (field ``level``).

    Example:
        >>> set_level("DEBUG", "sqlalchemy.engine")
    """
    if isinstance(level, int) and not isinstance(level, bool):
        logging.getLogger(name).setLevel(level)
        return
    value = canonical_level_name(level)
    if value not in logging.getLevelNamesMapping():
        raise InvalidInputError(
            f"unknown log level {level!r}: use DEBUG, INFO, WARNING, ERROR or CRITICAL",
            field="level",
            rule="log_level",
        )
    logging.getLogger(name).setLevel(str(value))


def shutdown_logging() -> None:
    """Flush and close every output (Elasticsearch sends what it still holds); idempotent.

    Runs at interpreter exit by itself; call it earlier in a shutdown hook to be sure the
    last lines leave before the process is killed.
    """
    with _state.lock:
        outputs = (*_state.settings_outputs, *_state.attached.values())
        _state.settings_outputs = ()
        _state.attached.clear()
        _state.configured = False
        _refresh_outputs()
        _install_hooks(enabled=False)
    close_outputs(outputs)

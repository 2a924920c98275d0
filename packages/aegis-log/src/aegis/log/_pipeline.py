"""The one path every line takes, whichever API wrote it: fields, masking, JSON, outputs.

structlog's own chain calls each processor through a generic loop and merges contextvars by
walking the whole context; this path fuses the fixed steps into one method so that a line with
full context costs about what structlog's fastest configuration costs without it
(benchmarks/log_throughput.py). User processors still run, in structlog's protocol.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, MutableMapping, Sequence
from types import TracebackType
from typing import Any, Final, Protocol, TypeAlias

from structlog.tracebacks import ExceptionDictTransformer

from aegis.core.context import CONTEXT_VARS
from aegis.core.utils.datetime import format_datetime
from aegis.core.utils.masking import (
    DEFAULT_SENSITIVE_KEYS,
    PiiKind,
    is_sensitive_key,
    mask_sensitive,
)
from aegis.log._context import bound_fields
from aegis.log._render import render_json, truncate_line
from aegis.log._trace import TraceLookup, trace_id_lookup

ExcInfo: TypeAlias = tuple[type[BaseException], BaseException, TracebackType | None]
Processor: TypeAlias = Callable[[Any, str, MutableMapping[str, Any]], MutableMapping[str, Any]]
"""A structlog processor: ``(logger, method_name, event_dict) -> event_dict``."""

_CONTEXT_ITEMS: Final = tuple(CONTEXT_VARS.items())
_RESERVED: Final = frozenset({"timestamp", "level", "logger", "trace_id", "span_id", *CONTEXT_VARS})
_MAX_FRAMES: Final = 50


class LogEntry:
    """One processed line as every output receives it.

    Attributes:
        line: the JSON document, without a trailing newline, at most ``max_line_bytes`` long.
        event: the same fields as a dict (masked, in line order).
        level: the stdlib level number (``logging.INFO`` is 20).
        created: seconds since the epoch when the line was logged.
        exc_info: the exception the line carries, for outputs that report it (Sentry).
    """

    __slots__ = ("created", "event", "exc_info", "level", "line")

    def __init__(
        self,
        line: bytes,
        event: dict[str, Any],
        level: int,
        created: float,
        exc_info: ExcInfo | None,
    ) -> None:
        self.line = line
        self.event = event
        self.level = level
        self.created = created
        self.exc_info = exc_info


class LogOutput(Protocol):
    """Where lines go: the console, a file, Elasticsearch, Sentry, a test's list.

    ``write`` is called on the logging thread: it must be quick and must not block on the
    network. An exception it raises is reported on stderr and the other outputs still run.
    """

    def write(self, entry: LogEntry) -> None:
        """Take one line."""

    def close(self) -> None:
        """Flush what is pending and release files, threads and connections."""


def resolve_exc_info(value: object) -> ExcInfo | None:
    """``exc_info=True`` means the exception being handled; an exception means itself."""
    if isinstance(value, BaseException):
        return (type(value), value, value.__traceback__)
    if isinstance(value, tuple) and len(value) == 3 and isinstance(value[1], BaseException):
        return value
    if value is True:
        current = sys.exc_info()
        return current if current[1] is not None else None
    return None


class Pipeline:
    """The configured path from fields to outputs; reconfiguring changes it in place.

    Loggers created before :func:`~aegis.log.configure_logging` hold this same object, so
    they follow every later configuration.
    """

    def __init__(self) -> None:
        self.outputs: tuple[LogOutput, ...] = ()
        self.processors: tuple[Processor, ...] = ()
        self.mask_fields = FieldMasker(DEFAULT_SENSITIVE_KEYS, "***")
        self.max_line_bytes = 64 * 1024
        self.service_name: str | None = None
        self.trace_ids = True
        self.current_trace_ids: TraceLookup = self._first_trace_ids
        self.transform_exception = ExceptionDictTransformer(
            show_locals=False, max_frames=_MAX_FRAMES, use_rich=False
        )
        self._error_lock = threading.Lock()
        self._reported_errors: set[str] = set()

    def emit(
        self,
        name: str,
        level: int,
        level_name: str,
        fields: dict[str, Any],
        created: float | None = None,
    ) -> None:
        """Process one event and hand it to every output; never raises.

        ``fields`` holds ``event`` (the message) and the caller's fields, and is consumed.
        """
        try:
            entry = self._process(name, level, level_name, fields, created)
        except Exception as exc:  # logging must never break the caller
            entry = self.fallback_entry(name, level, level_name, exc)
        self.dispatch(entry)

    def dispatch(self, entry: LogEntry) -> None:
        """Hand one processed line to every output; never raises."""
        for output in self.outputs:
            try:
                output.write(entry)
            except Exception as exc:  # one broken output must not stop the rest
                self.report_error(f"{type(output).__name__} failed", exc)

    def _process(
        self,
        name: str,
        level: int,
        level_name: str,
        fields: dict[str, Any],
        created: float | None,
    ) -> LogEntry:
        if created is None:
            created = time.time()
        exc_info = None
        if "exc_info" in fields:
            exc_info = resolve_exc_info(fields.pop("exc_info"))
            if exc_info is not None:
                fields["exception"] = self.transform_exception(exc_info)
        for processor in self.processors:
            fields = processor(name, level_name, fields)  # type: ignore[assignment]
        if not _RESERVED.isdisjoint(fields):
            fields = {(f"{key}_" if key in _RESERVED else key): v for key, v in fields.items()}
        event: dict[str, Any] = {
            "timestamp": format_datetime(created),
            "level": level_name,
            "logger": name,
            "event": None,  # the message, masked in place below with the other fields
        }
        for key, variable in _CONTEXT_ITEMS:
            value = variable.get()
            if value is not None:
                event[key] = value
        if self.service_name is not None and "service_name" not in event:
            event["service_name"] = self.service_name
        if self.trace_ids:
            ids = self.current_trace_ids()
            if ids is not None:
                event["trace_id"], event["span_id"] = ids
        self.mask_fields.mask_into(event, fields)
        line = render_json(event)
        if len(line) > self.max_line_bytes:
            line = truncate_line(event, line, self.max_line_bytes)
        return LogEntry(line, event, level, created, exc_info)

    def _first_trace_ids(self) -> tuple[str, str] | None:
        # The first line that wants ids settles how to find them (and imports OpenTelemetry).
        self.current_trace_ids = trace_id_lookup()
        return self.current_trace_ids()

    def fallback_entry(self, name: str, level: int, level_name: str, exc: Exception) -> LogEntry:
        """The line written instead of one that could not be processed."""
        created = time.time()
        event: dict[str, Any] = {
            "timestamp": format_datetime(created),
            "level": level_name,
            "logger": name,
            "event": "<log event could not be processed>",
            "log_error": f"{type(exc).__name__}: {exc}"[:1000],
        }
        return LogEntry(render_json(event), event, level, created, None)

    def report_error(self, what: str, exc: BaseException) -> None:
        """Say on stderr, once per kind of failure, that an output or processor failed.

        Not through logging: a failing output would otherwise feed itself.
        """
        key = f"{what}: {type(exc).__name__}"
        with self._error_lock:
            if key in self._reported_errors:
                return
            self._reported_errors.add(key)
        try:
            sys.stderr.write(f"aegis.log: {what}: {type(exc).__name__}: {exc}\n")
        except (OSError, ValueError):  # stderr closed at interpreter exit
            return


_PLAIN: Final = frozenset({int, float, bool, type(None)})
_MEMO_LIMIT: Final = 4096
_MEMO_TEXT_LENGTH: Final = 256


class FieldMasker:
    """``mask_sensitive`` applied to an event's fields, one value at a time, with memos.

    The result is the same as ``mask_sensitive(fields, keys=keys, mask=mask, pii=pii)``. The
    top level is walked here because most values are numbers and short strings: key verdicts
    and the masked form of short strings (messages are mostly literals) are remembered, so a
    repeated message is scanned for secrets once, not on every line. Both memos are bounded
    and emptied when full.
    """

    __slots__ = ("_keys", "_mask", "_pii", "_plain_keys", "_sensitive", "_texts", "known_text")

    def __init__(
        self, keys: frozenset[str], mask: str, pii: frozenset[PiiKind] = frozenset()
    ) -> None:
        self._keys = keys
        self._mask = mask
        self._pii = pii
        mask_sensitive("", keys=keys, mask=mask, pii=pii)  # an unknown PII kind fails here
        # key -> (masked key, whether its value is masked)
        self._sensitive: dict[str, tuple[str, bool]] = {}
        # the keys of _sensitive that are neither masked nor changed by masking
        self._plain_keys: set[str] = set()
        self._texts: dict[str, str] = {}
        # The masked form of a short text masked before, else None. Bound once (the memo is
        # emptied in place, never replaced): a lookup is one call.
        self.known_text: Callable[[str], str | None] = self._texts.get

    @property
    def pii(self) -> frozenset[PiiKind]:
        """The kinds of personal data masked in text."""
        return self._pii

    def text(self, text: str) -> str:
        """``text`` with its secrets (and configured personal data) masked."""
        return mask_sensitive(text, keys=self._keys, mask=self._mask, pii=self._pii)

    def __call__(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Return a masked copy of ``fields``."""
        masked: dict[str, Any] = {}
        self.mask_into(masked, fields)
        return masked

    def mask_into(self, masked: dict[str, Any], fields: Mapping[str, Any]) -> None:
        """Write the masked ``fields`` into ``masked`` (a key already there keeps its place)."""
        texts = self._texts
        if self._plain_keys.issuperset(fields):
            # The usual line: every key seen before, none masked or changed by masking.
            for key, value in fields.items():
                kind = type(value)
                if kind is str:
                    text = texts.get(value)  # only short texts are remembered
                    masked[key] = text if text is not None else self._remember(value)
                elif kind in _PLAIN:
                    masked[key] = value
                else:
                    masked[key] = self._mask_one(value)
        else:
            self._mask_keys_into(masked, fields)

    def _mask_keys_into(self, masked: dict[str, Any], fields: Mapping[str, Any]) -> None:
        texts = self._texts
        sensitive = self._sensitive
        for key, value in fields.items():
            known = sensitive.get(key) if type(key) is str else None
            if known is None:
                if type(key) is not str:  # only a dict built by hand gets here
                    masked.update(self._mask_one({key: value}))
                    continue
                known = self._judge(key)
            name, verdict = known
            if verdict:
                masked[name] = self._mask
            elif type(value) in _PLAIN:
                masked[name] = value
            elif type(value) is str:
                text = texts.get(value)  # only short texts are remembered
                masked[name] = text if text is not None else self._remember(value)
            else:
                masked[name] = self._mask_one(value)

    def _judge(self, key: str) -> tuple[str, bool]:
        sensitive = self._sensitive
        known = (self.text(key), is_sensitive_key(key, keys=self._keys))
        if len(sensitive) >= _MEMO_LIMIT:
            sensitive.clear()
            self._plain_keys.clear()
        sensitive[key] = known
        if known == (key, False):
            self._plain_keys.add(key)
        return known

    def are_plain(self, keys: Iterable[str]) -> bool:
        """Whether no key of ``keys`` is masked or changed by masking."""
        sensitive = self._sensitive
        return all((sensitive.get(key) or self._judge(key)) == (key, False) for key in keys)

    def value(self, value: object) -> Any:
        """``value`` masked as the value of a key that :meth:`are_plain` passed."""
        if type(value) is str:
            text = self._texts.get(value)  # only short texts are remembered
            return text if text is not None else self._remember(value)
        if type(value) in _PLAIN:
            return value
        return self._mask_one(value)

    def _remember(self, value: str) -> str:
        text = self.text(value)
        if len(value) > _MEMO_TEXT_LENGTH:
            return text
        texts = self._texts
        if len(texts) >= _MEMO_LIMIT:
            texts.clear()
        texts[value] = text
        return text

    def _mask_one(self, value: object) -> Any:
        return mask_sensitive(value, keys=self._keys, mask=self._mask, pii=self._pii)


def merged_fields(
    context: Mapping[str, Any], kw: Mapping[str, Any], event: object
) -> dict[str, Any]:
    """Bound context, then the logger's bound fields, then the call's: later ones win."""
    return {**bound_fields.get(), **context, **kw, "event": event}


LEVEL_NAMES: Final[dict[int, str]] = {
    logging.DEBUG: "debug",
    logging.INFO: "info",
    logging.WARNING: "warning",
    logging.ERROR: "error",
    logging.CRITICAL: "critical",
}


def level_name(level: int) -> str:
    """The lower-case name a line carries for a stdlib level number."""
    return LEVEL_NAMES.get(level) or logging.getLevelName(level).lower()


def canonical_level_name(value: object) -> object:
    """Accept ``"info"``, ``"WARN"`` or ``20``; return the canonical upper-case name."""
    if isinstance(value, int) and not isinstance(value, bool):
        return logging.getLevelName(value)
    if isinstance(value, str):
        name = value.strip().upper()
        return {"WARN": "WARNING", "FATAL": "CRITICAL"}.get(name, name)
    return value


def close_outputs(outputs: Iterable[LogOutput], keep: Sequence[LogOutput] = ()) -> None:
    """Close every output not in ``keep``; one failing close does not stop the others."""
    for output in outputs:
        if any(output is kept for kept in keep):
            continue
        try:
            output.close()
        except Exception as exc:  # shutting down goes on
            PIPELINE.report_error(f"closing {type(output).__name__} failed", exc)


PIPELINE: Final = Pipeline()
"""The process-wide pipeline every aegis logger and the stdlib handler write through."""

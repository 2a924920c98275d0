"""The bridge from stdlib ``logging``: library lines come out as the same JSON lines."""

from __future__ import annotations

import logging
from typing import Any, Final

from aegis.log._pipeline import PIPELINE, level_name, merged_fields

# Attributes every LogRecord has; anything else on a record came from `extra=`.
# uvicorn's `color_message` is its message again with ANSI colour codes for its own console
# formatter: the plain message is already on the line, escapes have no place in JSON.
_RECORD_ATTRIBUTES: Final = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys()
    | {"message", "asctime", "color_message"}
)


class AegisHandler(logging.Handler):
    """A stdlib handler that sends records through the aegis pipeline.

    ``configure_logging`` puts one on the root logger. Each record becomes one line with the
    record's message, logger name, level and time, its ``extra=`` fields, its exception as a
    structured stack trace, and the same context fields, masking and outputs as native lines.
    No ``Formatter`` is involved: the record goes straight to the pipeline.
    """

    def handle(self, record: logging.LogRecord) -> bool:
        """Filter and emit without the handler lock: the pipeline and outputs are thread-safe."""
        if not self.filter(record):
            return False
        self.emit(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        """Process one record; a record that cannot be processed still writes a line."""
        extra_names = record.__dict__.keys() - _RECORD_ATTRIBUTES
        extra: dict[str, Any] = (
            {name: record.__dict__[name] for name in extra_names} if extra_names else {}
        )
        try:
            message: object = record.getMessage()
        except Exception as exc:  # bad %-arguments from a library: keep the parts
            message = record.msg
            extra["args"] = record.args
            extra["format_error"] = f"{type(exc).__name__}: {exc}"
        if record.exc_info and record.exc_info[1] is not None:
            extra["exc_info"] = record.exc_info
        if record.stack_info:
            extra["stack"] = record.stack_info
        PIPELINE.emit(
            record.name,
            record.levelno,
            level_name(record.levelno),
            merged_fields({}, extra, message),
            record.created,
        )

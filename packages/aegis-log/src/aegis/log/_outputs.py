"""Console outputs: JSON lines on a stream, or structlog's coloured renderer for development."""

from __future__ import annotations

import io
import re
import sys
import threading
from typing import IO, Any, Final, Literal, TextIO

import structlog.dev
from structlog.dev import ConsoleRenderer, default_exception_formatter, plain_traceback
from structlog.typing import ExceptionRenderer, ExcInfo

from aegis.log._pipeline import PIPELINE, LogEntry

# structlog 26.1 added a colourless default formatter; before it (the 25.4 floor) the plain
# traceback is the colourless one, as it still is in 26.1 without rich.
_MONOCHROME_TRACEBACK: Final[ExceptionRenderer] = getattr(
    structlog.dev, "default_monochrome_exception_formatter", plain_traceback
)

_ANSI_ESCAPE: Final = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _resolve(stream: IO[Any] | Literal["stdout", "stderr"]) -> IO[Any]:
    # Looked up per line, not once: pytest's capture and test runners swap sys.stdout.
    if stream == "stdout":
        return sys.stdout
    if stream == "stderr":
        return sys.stderr
    return stream


class StreamOutput:
    """Write each line as JSON plus a newline to a stream, flushing after each line.

    Args:
        stream: ``"stdout"``/``"stderr"`` (looked up on every line, so redirection works), or
            any binary or text file object (``open(path, "ab")``, ``io.BytesIO()``).

    A line is written with one call, so lines from several threads never interleave.
    """

    def __init__(self, stream: IO[Any] | Literal["stdout", "stderr"] = "stdout") -> None:
        self._stream = stream
        # A file object is the same on every line: its binary layer is found once.
        self._target = None if isinstance(stream, str) else getattr(stream, "buffer", stream)

    def write(self, entry: LogEntry) -> None:
        """Write one JSON line."""
        target = self._target
        if target is None:
            stream = _resolve(self._stream)
            target = getattr(stream, "buffer", stream)
        try:
            target.write(entry.line + b"\n")
        except TypeError:  # a text stream without .buffer (io.StringIO)
            target.write(entry.line.decode() + "\n")
        target.flush()

    def close(self) -> None:
        """Flush the stream; it stays open, it is the caller's."""
        stream = _resolve(self._stream)
        if not stream.closed:
            stream.flush()


class ConsoleOutput:
    """Human-readable lines for development: structlog's ``ConsoleRenderer``.

    The stack trace is the readable one, not the JSON frames, and colours are on when the
    stream is a terminal (or as ``colors`` says). When the trace shows something the
    pipeline masks (a ``password=...`` in an exception message), it is written as the
    standard library's plain trace with those parts masked.
    """

    def __init__(
        self,
        stream: IO[str] | Literal["stdout", "stderr"] = "stderr",
        *,
        colors: bool | None = None,
    ) -> None:
        self._stream = stream
        if colors is None:
            isatty = getattr(_resolve(stream), "isatty", None)
            colors = bool(isatty and isatty())
        pretty = default_exception_formatter if colors else _MONOCHROME_TRACEBACK
        self._renderer = ConsoleRenderer(colors=colors, exception_formatter=_masked_traces(pretty))
        self._lock = threading.Lock()

    def write(self, entry: LogEntry) -> None:
        """Render and write one line."""
        event = {key: value for key, value in entry.event.items() if key != "exception"}
        if entry.exc_info is not None:
            event["exc_info"] = entry.exc_info
        text = self._renderer(None, str(event["level"]), event)
        stream = _resolve(self._stream)
        with self._lock:
            stream.write(f"{text}\n")
            stream.flush()

    def close(self) -> None:
        """Flush the stream; it stays open."""
        stream = _resolve(self._stream)
        if not stream.closed:
            stream.flush()


def _masked_traces(pretty: ExceptionRenderer) -> ExceptionRenderer:
    """Write the pretty trace when it hides nothing, else the plain one, masked.

    A pretty (rich) trace wraps long lines inside a frame, which can split a secret so that
    no pattern finds it; the plain trace keeps each message on one line, so it is the one
    that decides, and the one written when anything in it is masked.
    """

    def render(sio: TextIO, exc_info: ExcInfo) -> None:
        mask_text = PIPELINE.mask_fields.text
        plain = io.StringIO()
        plain_traceback(plain, exc_info)
        plain_text = plain.getvalue()
        masked = mask_text(plain_text)
        if masked == plain_text and pretty is not plain_traceback:
            rendered = io.StringIO()
            pretty(rendered, exc_info)
            text = rendered.getvalue()
            visible = _ANSI_ESCAPE.sub("", text)
            if mask_text(visible) == visible:
                sio.write(text)
                return
        sio.write(masked)

    return render

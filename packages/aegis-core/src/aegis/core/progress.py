"""Progress lines for long-running commands: shown on a terminal, silent in pipes and logs.

A command line tool makes one :class:`ProgressReporter` on standard error. On a terminal it
prints a line per step, each led by the seconds since the command began, and a counter that
updates in place; where standard error is a pipe, a file or a CI log it prints nothing, so
scripts see the command's results and nothing else.

Example (on a terminal)::

    progress = ProgressReporter()
    with progress.step("users: users.users@2.0.0"):
        migrate()
    #    0.0s  users: users.users@2.0.0 ...
    #    0.4s  users: users.users@2.0.0 ok in 0.41s
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

_REDRAW_SECONDS = 0.1  # a counter fed thousands of times a second redraws at most this often


class ProgressReporter:
    """Reports the steps of a command on ``stream`` when it is a terminal; silent otherwise.

    Args:
        stream: where the lines go (standard error by default).
        enabled: show the lines; by default only when ``stream`` is a terminal (``isatty()``).
        clock: seconds from an arbitrary start (``time.monotonic``), replaceable in tests.

    Example:
        >>> import io
        >>> quiet = ProgressReporter(io.StringIO())  # not a terminal: nothing is written
        >>> with quiet.step("users: users.users@2.0.0"):
        ...     pass
        >>> quiet.enabled
        False
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        enabled: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = sys.stderr if stream is None else stream
        self.enabled = _is_terminal(self.stream) if enabled is None else enabled
        self._clock = clock
        self._began = clock()
        self._starts: dict[str, float] = {}
        self._counter: str | None = None  # the text of a counter line not yet ended
        self._undrawn = False  # the counter's text changed since it was last drawn
        self._drawn_width = 0
        self._drawn_at = float("-inf")

    @property
    def elapsed(self) -> float:
        """Seconds since the reporter was made (the command began)."""
        return self._clock() - self._began

    def line(self, text: str) -> None:
        """Print ``text`` on a line of its own, led by the elapsed seconds."""
        if not self.enabled:
            return
        self._end_counter()
        self._write(f"{self._stamp()}{text}\n")

    def started(self, name: str) -> None:
        """Print ``name ...`` and remember when the step ``name`` began."""
        self._starts[name] = self._clock()
        self.line(f"{name} ...")

    def finished(self, name: str, outcome: str = "ok") -> float:
        """Print ``name OUTCOME in N.NNs`` for a step begun by :meth:`started`; return N."""
        began = self._starts.pop(name, self._began)
        seconds = self._clock() - began
        self.line(f"{name} {outcome} in {seconds:.2f}s")
        return seconds

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        """Report the block as the step ``name``: ``ok`` when it returns, ``failed`` if not."""
        self.started(name)
        try:
            yield
        except BaseException:
            self.finished(name, "failed")
            raise
        self.finished(name)

    def count(self, text: str, *, final: bool = False) -> None:
        """Show ``text`` (``replayed 40/100, 1 failed``) on one line, updated in place.

        Frequent calls redraw at most every 0.1 s; the latest text is always the one left on
        screen, because the next :meth:`line` or :meth:`close` (or ``final=True``) draws it and
        ends the line.
        """
        if not self.enabled:
            return
        self._counter, self._undrawn = text, True
        now = self._clock()
        if final or now - self._drawn_at >= _REDRAW_SECONDS:
            self._draw(now)
        if final:
            self._end_counter()

    def close(self) -> None:
        """End a counter line, so what follows starts on a line of its own."""
        if self.enabled:
            self._end_counter()

    def _draw(self, now: float) -> None:
        text = f"{self._stamp()}{self._counter}"
        # Spaces over the rest of a longer earlier text: no escape codes, so a dumb terminal
        # shows it right too.
        self._write(f"\r{text}{' ' * max(0, self._drawn_width - len(text))}")
        self._drawn_width, self._drawn_at, self._undrawn = len(text), now, False

    def _end_counter(self) -> None:
        if self._counter is None:
            return
        if self._undrawn:
            self._draw(self._clock())
        self._write("\n")
        self._counter, self._drawn_width, self._drawn_at = None, 0, float("-inf")

    def _stamp(self) -> str:
        return f"{self.elapsed:6.1f}s  "

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()


def _is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False

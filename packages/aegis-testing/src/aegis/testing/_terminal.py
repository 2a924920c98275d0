"""terminal_stderr(): standard error on a pseudo-terminal, as when a person runs a command.

Commands show progress only where standard error is a terminal; a test of that progress runs
the command in process with ``sys.stderr`` on a real pseudo-terminal (``isatty()`` is true)
and reads what arrived. Raw mode: the terminal passes the bytes as written (no newline turned
into carriage return and newline), so a counter redrawn in place arrives as written.
"""

from __future__ import annotations

import os
import pty
import sys
import threading
import tty
from collections.abc import Iterator
from contextlib import contextmanager

_READ_SIZE = 65536


class TerminalOutput:
    """What a pseudo-terminal received; complete once the ``terminal_stderr`` block exited."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []

    @property
    def text(self) -> str:
        """Everything written to the terminal, decoded as UTF-8."""
        return b"".join(self._chunks).decode("utf-8", errors="replace")

    def lines(self) -> list[str]:
        """The text's lines, each as the terminal shows it (a line redrawn in place: its last)."""
        return [line.rpartition("\r")[2].rstrip() for line in self.text.split("\n") if line]

    def _read_from(self, master: int) -> None:
        while True:
            try:
                chunk = os.read(master, _READ_SIZE)
            except OSError:  # EIO: the terminal's other end is closed and everything was read
                return
            if not chunk:
                return
            self._chunks.append(chunk)


@contextmanager
def terminal_stderr() -> Iterator[TerminalOutput]:
    """Point ``sys.stderr`` at a pseudo-terminal for the block; yield what it receives.

    Read ``.text`` or ``.lines()`` after the block. ``sys.stderr`` is put back however the
    block ends. Unix only (:mod:`pty`).

    Example:
        >>> with terminal_stderr() as terminal:
        ...     assert main(["services", "up", "redis"]) == 0
        >>> assert any(line.endswith("s  redis ...") for line in terminal.lines())
    """
    master, slave = pty.openpty()
    tty.setraw(slave)
    output = TerminalOutput()
    reader = threading.Thread(target=output._read_from, args=(master,), daemon=True)
    reader.start()
    stream = os.fdopen(slave, "w", encoding="utf-8")
    previous = sys.stderr
    sys.stderr = stream
    try:
        yield output
    finally:
        sys.stderr = previous
        stream.close()  # flushes, then the reader sees the end
        reader.join()
        os.close(master)

"""A JSON-lines file that rotates by size and by time, gzips rotated files and keeps N of them."""

from __future__ import annotations

import gzip
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Final

from aegis.log._pipeline import PIPELINE, LogEntry
from aegis.log._settings import FileSettings

_PERIOD_SECONDS: Final = {"midnight": 86_400, "hourly": 3_600}
_PARTIAL_SUFFIX: Final = ".part"


def _next_boundary(moment: float, period: int) -> float:
    """The first UTC period boundary after ``moment`` (periods divide the day evenly)."""
    return (int(moment) // period + 1) * period


class RotatingFileOutput:
    """Append JSON lines to ``settings.path``; rotate, compress and prune as settings say.

    A rotated file is renamed to ``<name>.<UTC time of rotation>`` (``app.log.20260102T000000
    123456Z``), so names sort by age; with ``compress`` it becomes ``….gz`` in a background
    thread, never on the logging call. Only ``backup_count`` rotated files are kept. Lines
    are flushed one by one, so a crash loses none that were logged.
    """

    def __init__(self, settings: FileSettings) -> None:
        self._settings = settings
        self._path = settings.path
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._file = self._path.open("ab")
        self._size = self._file.tell()
        self._period = _PERIOD_SECONDS.get(settings.rotate_when or "", 0)
        self._rollover_at = (
            _next_boundary(self._path.stat().st_mtime if self._size else time.time(), self._period)
            if self._period
            else float("inf")
        )
        # One worker: compressions and pruning run in order, never two on the same file.
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aegis-log-file")

    def write(self, entry: LogEntry) -> None:
        """Append one line, rotating first when it is due."""
        data = entry.line + b"\n"
        with self._lock:
            max_bytes = self._settings.max_bytes
            if self._size and (
                (max_bytes and self._size + len(data) > max_bytes)
                or entry.created >= self._rollover_at
            ):
                self._rollover(entry.created)
            self._file.write(data)
            self._file.flush()
            self._size += len(data)

    def _rollover(self, now: float) -> None:
        self._file.close()
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now))
        target = self._path.with_name(f"{self._path.name}.{stamp}{int(now % 1 * 1e6):06d}Z")
        while target.exists() or target.with_name(target.name + ".gz").exists():
            target = target.with_name(target.name + "_")
        self._path.rename(target)
        self._file = self._path.open("ab")
        self._size = 0
        if self._period:
            self._rollover_at = _next_boundary(now, self._period)
        if self._settings.compress:
            self._worker.submit(self._compress_and_prune, target)
        else:
            self._worker.submit(self._prune)

    def _compress_and_prune(self, rotated: Path) -> None:
        partial = rotated.with_name(rotated.name + ".gz" + _PARTIAL_SUFFIX)
        try:
            with rotated.open("rb") as source, gzip.open(partial, "wb") as target:
                shutil.copyfileobj(source, target)
            partial.rename(rotated.with_name(rotated.name + ".gz"))
            rotated.unlink()
        except OSError as exc:  # disk full, permissions: keep the uncompressed file
            partial.unlink(missing_ok=True)
            PIPELINE.report_error(f"compressing {rotated} failed", exc)
        self._prune()

    def rotated_files(self) -> list[Path]:
        """The rotated files that exist now, oldest first (compressed or not)."""
        prefix = self._path.name + "."
        return sorted(
            (
                path
                for path in self._path.parent.iterdir()
                if path.name.startswith(prefix) and not path.name.endswith(_PARTIAL_SUFFIX)
            ),
            key=lambda path: path.name.removesuffix(".gz"),
        )

    def _prune(self) -> None:
        rotated = self.rotated_files()
        excess = len(rotated) - self._settings.backup_count
        for path in rotated[: max(excess, 0)]:
            try:
                path.unlink()
            except OSError as exc:
                PIPELINE.report_error(f"deleting {path} failed", exc)

    def close(self) -> None:
        """Finish pending compressions and close the file."""
        with self._lock:
            if not self._file.closed:
                self._file.close()
        self._worker.shutdown(wait=True)

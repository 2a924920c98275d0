"""RotatingFileOutput: size and time rotation, gzip of rotated files, retention."""

from __future__ import annotations

import gzip
import json
import os
from typing import TYPE_CHECKING

from aegis.log import (
    FileSettings,
    LogEntry,
    LogSettings,
    RotatingFileOutput,
    configure_logging,
    get_logger,
    shutdown_logging,
)

if TYPE_CHECKING:
    from pathlib import Path

DAY = 86_400.0


def entry(text: str, created: float) -> LogEntry:
    line = json.dumps({"event": text}).encode()
    return LogEntry(line, {"event": text}, 20, created, None)


def read_all(output: RotatingFileOutput, path: Path) -> list[str]:
    """Every event in the rotated files (oldest first) and then the live file."""
    events: list[str] = []
    for rotated in output.rotated_files():
        data = (
            gzip.decompress(rotated.read_bytes())
            if rotated.suffix == ".gz"
            else rotated.read_bytes()
        )
        events += [json.loads(line)["event"] for line in data.splitlines()]
    events += [json.loads(line)["event"] for line in path.read_bytes().splitlines()]
    return events


def test_configured_file_receives_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "app.log"
    configure_logging(LogSettings(console=None, file=FileSettings(path=path)))
    get_logger("tests.file").warning("to file", n=1)
    shutdown_logging()
    (line,) = path.read_bytes().splitlines()
    assert json.loads(line)["event"] == "to file"


def test_size_rotation_compresses_and_keeps_every_line(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    output = RotatingFileOutput(FileSettings(path=path, max_bytes=100, backup_count=10))
    for number in range(10):
        output.write(entry(f"line {number:02d} " + "x" * 20, 1_800_000_000.0 + number))
    output.close()
    rotated = output.rotated_files()
    assert rotated
    assert all(file.suffix == ".gz" for file in rotated)
    assert path.stat().st_size <= 100
    assert read_all(output, path) == [f"line {number:02d} " + "x" * 20 for number in range(10)]


def test_retention_keeps_only_backup_count_files(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    output = RotatingFileOutput(
        FileSettings(path=path, max_bytes=60, backup_count=2, compress=False)
    )
    for number in range(8):
        output.write(entry(f"line {number} " + "y" * 30, 1_800_000_000.0 + number))
    output.close()
    rotated = output.rotated_files()
    assert len(rotated) == 2
    assert all(file.suffix != ".gz" for file in rotated)
    assert read_all(output, path) == [f"line {number} " + "y" * 30 for number in (5, 6, 7)]


def test_time_rotation_starts_a_file_at_each_utc_midnight(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    day = 20_000 * DAY
    output = RotatingFileOutput(
        FileSettings(path=path, max_bytes=0, rotate_when="midnight", compress=False)
    )
    output._rollover_at = day + DAY  # the file was opened on `day`
    output.write(entry("monday 1", day + 10))
    output.write(entry("monday 2", day + DAY - 1))
    output.write(entry("tuesday", day + DAY + 5))
    output.write(entry("wednesday", day + 2 * DAY))
    output.close()
    rotated = output.rotated_files()
    assert len(rotated) == 2
    assert read_all(output, path) == ["monday 1", "monday 2", "tuesday", "wednesday"]
    assert [json.loads(line)["event"] for line in rotated[0].read_bytes().splitlines()] == [
        "monday 1",
        "monday 2",
    ]


def test_hourly_rotation_due_for_an_old_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    path.write_bytes(b'{"event": "old"}\n')
    old = 1_800_000_000.0 - 7200
    os.utime(path, (old, old))
    output = RotatingFileOutput(FileSettings(path=path, rotate_when="hourly", compress=False))
    output.write(entry("new", 1_800_000_000.0))
    output.close()
    assert read_all(output, path) == ["old", "new"]
    assert len(output.rotated_files()) == 1


def test_rotations_in_the_same_microsecond_do_not_collide(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    output = RotatingFileOutput(
        FileSettings(path=path, max_bytes=10, backup_count=5, compress=False)
    )
    for text in ["first line", "second line", "third line"]:
        output.write(entry(text, 1_800_000_000.0))
    output.close()
    assert read_all(output, path) == ["first line", "second line", "third line"]

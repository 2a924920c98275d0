"""How ``aegis-msg dlt`` prints dead letters and replay results, as text and as JSON."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime
from typing import Any, Final

from aegis.core.utils.datetime import format_datetime
from aegis.msg._dlt import DeadLetter
from aegis.msg._dlt_client import ReplayResult
from aegis.msg._retry import DLT_EXCEPTION_STACKTRACE

_MESSAGE_WIDTH: Final = 100


def show_text(letter: DeadLetter) -> str:
    """One dead letter in full: where from, the error, headers, payload and stack trace."""
    rows = [
        ("record", f"{letter.topic} {letter.position}"),
        ("dead-lettered", _time_text(letter.timestamp, "milliseconds")),
        ("key", "(none)" if letter.key is None else letter.summary()["key"]),
        ("event", f"{letter.event_type or '?'} {letter.event_id or '?'}"),
        ("original", _origin(letter)),
        ("group", letter.consumer_group or "?"),
        ("error", f"{letter.exception_class or '?'}: {letter.exception_message or ''}"),
        ("attempts", "?" if letter.attempts is None else str(letter.attempts)),
    ]
    rows += [("replayed from", origin) for origin in letter.replayed_from]
    lines = [f"{name:<14}{value}" for name, value in rows]
    lines.append("headers")
    lines += [
        f"  {name}: {value}"
        for name, value in letter.decoded_headers()
        if name != DLT_EXCEPTION_STACKTRACE
    ]
    lines.append("payload")
    lines += _indented(_payload_text(letter.payload()))
    if letter.stacktrace:
        lines.append("stack trace")
        lines += _indented(letter.stacktrace.rstrip("\n"))
    return "\n".join(lines)


def record_line(letter: DeadLetter) -> str:
    """One line of ``dlt list``: position, time, event, original record and error."""
    error = f"{_short_class(letter.exception_class)}: {letter.exception_message or ''}"
    return "  ".join(
        [
            letter.position,
            _time_text(letter.timestamp, "seconds"),
            f"{letter.event_type or '?'} {letter.event_id or '?'}",
            f"from {_origin(letter, short=True)}",
            _truncated(error),
        ]
    )


class Tally:
    """What ``dlt list`` counts as it prints: records by original topic and by error class."""

    def __init__(self) -> None:
        self.count = 0
        self.origins: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()

    def add(self, letter: DeadLetter) -> None:
        """Count ``letter`` (nothing else of it is kept)."""
        self.count += 1
        self.origins[letter.original_topic or "?"] += 1
        self.errors[_short_class(letter.exception_class)] += 1


def list_summary(topic: str, tally: Tally) -> str:
    """The last line of ``dlt list``: the count, by original topic and by error class."""
    if not tally.count:
        return f"no dead letters in {topic} match"
    return (
        f"{_plural(tally.count, 'dead letter')} in {topic}; from "
        + ", ".join(f"{name} ({count})" for name, count in tally.origins.most_common())
        + "; errors "
        + ", ".join(f"{name} ({count})" for name, count in tally.errors.most_common())
    )


def result_line(result: ReplayResult) -> str:
    """One line of ``dlt replay``: the record, where it went (or would go) or why not."""
    letter = result.letter
    head = f"{letter.position}  {letter.event_type or '?'} {letter.event_id or '?'}  -> "
    if result.error is not None:
        return f"{head}{result.target or '?'}  FAILED: {result.error}"
    if result.dry_run:
        return f"{head}{result.target}  would be replayed (dry run)"
    return f"{head}{result.target}[{result.partition}]@{result.offset}  replayed"


def result_json(result: ReplayResult) -> dict[str, Any]:
    """One JSON line of ``dlt replay --json``."""
    status = "failed" if result.error else "dry_run" if result.dry_run else "replayed"
    return {
        "position": result.letter.position,
        "event_id": result.letter.event_id,
        "target": result.target,
        "partition": result.partition,
        "offset": result.offset,
        "status": status,
        "error": result.error,
    }


def replay_summary(topic: str, results: list[ReplayResult], failed: int, *, dry_run: bool) -> str:
    """The last line of ``dlt replay``: how many were (or would be) replayed, how many failed."""
    if not results:
        return f"no dead letters in {topic} match; nothing to replay"
    done = len(results) - failed
    if dry_run:
        text = f"dry run: {done} of {_plural(len(results), 'dead letter')} would be replayed"
        return text + (f", {failed} could not be" if failed else "") + "; nothing was sent"
    return f"replayed {done} of {_plural(len(results), 'dead letter')}" + (
        f"; {failed} failed" if failed else ""
    )


def _origin(letter: DeadLetter, *, short: bool = False) -> str:
    if letter.original_topic is None:
        return "?"
    where = f"{letter.original_topic}[{letter.original_partition}]@{letter.original_offset}"
    if short or letter.original_timestamp is None:
        return where
    return f"{where} at {_time_text(letter.original_timestamp, 'milliseconds')}"


def _time_text(value: datetime | None, timespec: str) -> str:
    return "?" if value is None else format_datetime(value, timespec=timespec)


def _short_class(name: str | None) -> str:
    return "?" if not name else name.rsplit(".", 1)[-1]


def _truncated(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= _MESSAGE_WIDTH else flat[: _MESSAGE_WIDTH - 1] + "…"


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def _payload_text(payload: Any) -> str:
    if payload is None:
        return "(no body)"
    if isinstance(payload, str):
        return payload
    return json.dumps(payload, indent=2, ensure_ascii=False)


def _indented(text: str) -> list[str]:
    return ["  " + line for line in text.splitlines()]

"""Masking, values JSON lacks, the size limit, and structured stack traces."""

from __future__ import annotations

import json
import logging
import sys
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, SecretStr

from aegis.core.context import request_context
from aegis.core.utils.masking import DEFAULT_SENSITIVE_KEYS, mask_sensitive
from aegis.log import (
    LogEntry,
    LogSettings,
    StreamOutput,
    configure_logging,
    get_logger,
    shutdown_logging,
)
from aegis.log._pipeline import FieldMasker
from aegis.log._render import render_json, truncate_line

if TYPE_CHECKING:
    from collections.abc import Callable

    from conftest import Lines


class Credentials(BaseModel):
    user: str
    api_key: SecretStr


@dataclass
class Card:
    holder: str
    card_number: str


class Opaque:
    def __repr__(self) -> str:
        return "<Opaque thing>"


class Broken:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


def test_sensitive_keys_are_masked_at_any_depth(lines: Lines) -> None:
    get_logger("tests.mask").info(
        "login",
        password="hunter2",
        request={"headers": {"Authorization": "Bearer abc", "Cookie": "s=1", "Accept": "*/*"}},
        attempts=[{"otp": "123456"}, {"user": "kim"}],
        account=Credentials(user="kim", api_key=SecretStr("k")),
        card=Card(holder="Kim", card_number="4111111111111111"),
        note="paid with 4111 1111 1111 1111 via postgresql://app:pw@db/main",
    )
    line = lines.last()
    assert line["password"] == "***"
    assert line["request"]["headers"] == {
        "Authorization": "***",
        "Cookie": "***",
        "Accept": "*/*",
    }
    assert line["attempts"] == [{"otp": "***"}, {"user": "kim"}]
    assert line["account"] == {"user": "kim", "api_key": "***"}
    assert line["card"] == {"holder": "Kim", "card_number": "***"}
    assert line["note"] == "paid with *** via postgresql://app:***@db/main"


def test_the_message_itself_is_masked(lines: Lines) -> None:
    get_logger("tests.mask").info("charged card 4111 1111 1111 1111")
    assert lines.last()["event"] == "charged card ***"


def test_configured_keys_and_mask_are_used(configure_into: Callable[..., Lines]) -> None:
    captured = configure_into(sensitive_keys=frozenset({"internal_ref"}), mask="[hidden]")
    get_logger("tests.mask").warning("custom", internal_ref="x-1", password="shown now")
    line = captured.last()
    assert line["internal_ref"] == "[hidden]"
    assert line["password"] == "shown now"


def test_unserializable_values_render_instead_of_raising(lines: Lines) -> None:
    cycle: dict[str, Any] = {"name": "loop"}
    cycle["self"] = cycle
    get_logger("tests.bad").info(
        "odd values",
        tags={"b"},
        raw=b"\xff\x00ok",
        at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        took=timedelta(seconds=1.5),
        price=Decimal("9.99"),
        path=PurePosixPath("/srv/x"),
        obj=Opaque(),
        broken=Broken(),
        cycle=cycle,
        huge=2**80,
        numbers={1: "one", (2, 3): "tuple key"},
    )
    line = lines.last()
    assert line["tags"] == ["b"]
    assert line["raw"] == "\\xff\x00ok"
    assert line["at"] == "2026-01-02T03:04:05Z"
    assert line["took"] == "0:00:01.500000"
    assert line["price"] == "9.99"
    assert line["path"] == "/srv/x"
    assert line["obj"] == "<Opaque thing>"
    assert line["broken"] == "<unrepresentable Broken>"
    assert line["cycle"] == {"name": "loop", "self": "<cycle>"}
    assert line["huge"] == str(2**80)
    assert line["numbers"] == {"1": "one", "[2, 3]": "tuple key"}


def test_reserved_field_names_from_callers_are_kept_beside_the_real_ones(lines: Lines) -> None:
    with request_context(request_id="real"):
        get_logger("tests.reserved").info("clash", level="mine", request_id="fake")
    line = lines.last()
    assert (line["level"], line["level_"]) == ("info", "mine")
    assert (line["request_id"], line["request_id_"]) == ("real", "fake")


def test_a_line_over_the_limit_is_cut_with_a_marker(configure_into: Callable[..., Lines]) -> None:
    captured = configure_into(max_line_bytes=2048)
    with request_context(request_id="r-9"):
        get_logger("tests.big").warning("big " + "é" * 500, payload="x" * 10_000)
    (raw,) = captured.raw()
    assert len(raw) <= 2048
    line = json.loads(raw)
    assert line["truncated"] is True
    assert line["original_bytes"] > 10_000
    assert line["request_id"] == "r-9"
    assert line["level"] == "warning"
    assert line["event"].startswith("big é")
    assert line["partial"].endswith("…")
    assert line["partial"].startswith('{"timestamp"')


def test_truncation_fits_when_the_kept_fields_alone_are_too_long() -> None:
    event = {"timestamp": "t", "request_id": "r" * 5000, "event": "x"}
    line = render_json(event)
    cut = truncate_line(event, line, 1024)
    assert len(cut) <= 1024
    assert json.loads(cut)["truncated"] is True


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True)
    | st.text()
    | st.binary()
    | st.datetimes()
    | st.decimals(allow_nan=False),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text() | st.integers(), children, max_size=4)
        | st.sets(st.integers(), max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.text(min_size=1), json_values, max_size=5))
def test_any_fields_render_as_one_json_line(fields: dict[str, Any]) -> None:
    event = {"timestamp": "t", "level": "info", **fields}
    line = render_json(event)
    assert b"\n" not in line
    assert isinstance(json.loads(line), dict)
    limited = truncate_line(event, line, 1024)
    assert len(limited) <= 1024
    assert isinstance(json.loads(limited), dict)


def _fail(depth: int) -> None:
    if depth == 0:
        raise KeyError("missing key with card 4111 1111 1111 1111")
    _fail(depth - 1)


def test_exception_carries_structured_frames_and_context(lines: Lines) -> None:
    log = get_logger("tests.errors")
    with request_context(request_id="r-err"):
        try:
            _fail(2)
        except KeyError:
            log.exception("lookup failed", item=3)
    line = lines.last()
    assert (line["level"], line["request_id"], line["item"]) == ("error", "r-err", 3)
    (exception,) = line["exception"]
    assert exception["exc_type"] == "KeyError"
    assert "***" in exception["exc_value"]
    assert "4111" not in json.dumps(line)
    names = [frame["name"] for frame in exception["frames"]]
    assert names[0] == "test_exception_carries_structured_frames_and_context"
    assert names.count("_fail") == 3
    assert all({"filename", "lineno", "name"} <= frame.keys() for frame in exception["frames"])


def test_exc_info_accepts_an_exception_and_ignores_false(lines: Lines) -> None:
    log = get_logger("tests.errors")
    log.error("given", exc_info=ValueError("bad"))
    log.error("none active", exc_info=True)
    log.error("off", exc_info=False)
    given_line, none_active, off = lines.all()
    assert given_line["exception"][0]["exc_type"] == "ValueError"
    assert "exception" not in none_active
    assert "exception" not in off


def test_stdlib_exceptions_are_structured_too(lines: Lines) -> None:
    try:
        raise KeyError("x")
    except KeyError:
        logging.getLogger("tests.library").exception("library failed")
    assert lines.last()["exception"][0]["exc_type"] == "KeyError"


def test_chained_exceptions_are_all_listed(lines: Lines) -> None:
    try:
        try:
            raise OSError("disk")
        except OSError as exc:
            raise RuntimeError("save failed") from exc
    except RuntimeError:
        get_logger("tests.errors").exception("chained")
    types = [item["exc_type"] for item in lines.last()["exception"]]
    assert types == ["RuntimeError", "OSError"]


def test_uncaught_exceptions_are_logged_at_critical(lines: Lines) -> None:
    try:
        raise ValueError("nobody caught me")
    except ValueError:
        sys.excepthook(*sys.exc_info())
    line = lines.last()
    assert (line["level"], line["logger"]) == ("critical", "aegis.uncaught")
    assert line["exception"][0]["exc_value"] == "nobody caught me"


def test_uncaught_exceptions_in_threads_are_logged(lines: Lines) -> None:
    def work() -> None:
        raise LookupError("thread failed")

    thread = threading.Thread(target=work, name="worker-1")
    thread.start()
    thread.join()
    line = lines.last()
    assert line["event"] == "uncaught exception in thread"
    assert line["thread_name"] == "worker-1"
    assert line["exception"][0]["exc_type"] == "LookupError"


def test_keyboard_interrupt_goes_to_the_default_hook(
    lines: Lines, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        raise KeyboardInterrupt
    except KeyboardInterrupt:
        sys.excepthook(*sys.exc_info())
    assert lines.all() == []
    assert "KeyboardInterrupt" in capsys.readouterr().err


@settings(max_examples=150, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["password", "user", "X-Api-Key", "note", "pin", "company", "event"])
        | st.text(max_size=8),
        json_values
        | st.sampled_from(["4111 1111 1111 1111", "postgresql://app:pw@db/main", "x" * 300]),
        max_size=6,
    )
)
def test_field_masker_agrees_with_mask_sensitive(fields: dict[str, Any]) -> None:
    masker = FieldMasker(DEFAULT_SENSITIVE_KEYS, "***")
    expected = mask_sensitive(fields)
    assert masker(fields) == expected
    assert masker(fields) == expected  # the memoized second pass too


def test_a_failing_output_does_not_stop_the_others(
    lines: Lines, capsys: pytest.CaptureFixture[str]
) -> None:
    class Failing:
        def write(self, entry: LogEntry) -> None:
            raise OSError("disk full")

        def close(self) -> None:
            raise OSError("still full")

    configure_logging(LogSettings(console=None), outputs=[Failing(), StreamOutput(lines.buffer)])
    get_logger("tests.outputs").warning("first")
    get_logger("tests.outputs").warning("second")
    shutdown_logging()
    assert [line["event"] for line in lines.all()] == ["first", "second"]
    err = capsys.readouterr().err
    assert err.count("Failing failed: OSError: disk full") == 1  # reported once, not per line
    assert "closing Failing failed" in err


def test_a_failing_processor_still_writes_a_line(lines: Lines) -> None:
    def broken(_logger: object, _method: str, _event: Any) -> Any:
        raise RuntimeError("processor bug")

    configure_logging(
        LogSettings(console=None), outputs=[StreamOutput(lines.buffer)], processors=[broken]
    )
    get_logger("tests.outputs").error("kept")
    line = lines.last()
    assert line["event"] == "<log event could not be processed>"
    assert line["log_error"] == "RuntimeError: processor bug"
    assert (line["level"], line["logger"]) == ("error", "tests.outputs")

"""configure_logging, native and stdlib lines, context fields, levels and idempotence."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
import structlog
from opentelemetry import trace

from aegis.core.context import request_context
from aegis.core.errors import InvalidInputError
from aegis.core.models import Environment
from aegis.log import (
    AegisHandler,
    ConsoleSettings,
    LogSettings,
    StreamOutput,
    bind_context,
    bound_context,
    capture_logs,
    clear_context,
    configure_logging,
    configured_logging,
    get_context,
    get_logger,
    set_level,
    unbind_context,
)
from aegis.log._pipeline import PIPELINE
from aegis.log._trace import trace_id_lookup

if TYPE_CHECKING:
    from conftest import Lines

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def test_native_line_is_one_json_document_with_core_fields(lines: Lines) -> None:
    get_logger("tests.orders").info("order paid", order_id=7, amount=12.5)
    (line,) = lines.all()
    assert list(line)[:4] == ["timestamp", "level", "logger", "event"]
    assert ISO_UTC.match(line["timestamp"])
    assert line["level"] == "info"
    assert line["logger"] == "tests.orders"
    assert line["event"] == "order paid"
    assert (line["order_id"], line["amount"]) == (7, 12.5)


def test_logger_name_defaults_to_the_calling_module(lines: Lines) -> None:
    get_logger().warning("hello")
    assert lines.last()["logger"] == __name__


def test_request_context_fields_are_on_every_line(lines: Lines) -> None:
    log = get_logger("tests.ctx")
    with request_context(request_id="r-1", correlation_id="c-1", user_id="u-1", tenant_id="t-1"):
        log.info("inside")
        logging.getLogger("tests.lib").warning("from a library")
    log.info("outside")
    inside, library, outside = lines.all()
    for line in (inside, library):
        assert line["request_id"] == "r-1"
        assert line["correlation_id"] == "c-1"
        assert line["user_id"] == "u-1"
        assert line["tenant_id"] == "t-1"
    assert "request_id" not in outside


def test_service_name_from_settings_unless_the_context_has_one(
    configure_into: Callable[..., Lines],
) -> None:
    captured = configure_into(service_name="users")
    log = get_logger("tests.svc")
    log.warning("plain")
    with request_context(service_name="policies"):
        log.warning("in context")
    assert [line["service_name"] for line in captured.all()] == ["users", "policies"]


def test_bound_fields_follow_precedence_and_lifetimes(lines: Lines) -> None:
    log = get_logger("tests.bind").bind(source="logger", step=1)
    bind_context(source="context", request_kind="api")
    with bound_context(job="report"):
        log.info("first", step=2)
        assert get_context() == {"source": "context", "request_kind": "api", "job": "report"}
    unbind_context("request_kind", "not-bound")
    log.info("second")
    clear_context()
    log.new(only="this").info("third")
    first, second, third = lines.all()
    assert (first["source"], first["step"], first["job"], first["request_kind"]) == (
        "logger",
        2,
        "report",
        "api",
    )
    assert "job" not in second
    assert "request_kind" not in second
    assert third["only"] == "this"
    assert "source" not in third


@pytest.mark.anyio
async def test_context_is_separate_for_concurrent_tasks(lines: Lines) -> None:
    log = get_logger("tests.tasks")
    both_bound = asyncio.Event()
    bound = 0

    async def request(name: str) -> None:
        nonlocal bound
        with request_context(request_id=name):
            bind_context(handler=name)
            bound += 1
            if bound == 2:
                both_bound.set()
            await both_bound.wait()  # both tasks have bound before either logs
            log.info("handled")

    await asyncio.gather(request("a"), request("b"))
    handled = [line for line in lines.all() if line["logger"] == "tests.tasks"]
    assert sorted((line["request_id"], line["handler"]) for line in handled) == [
        ("a", "a"),
        ("b", "b"),
    ]
    assert get_context() == {}


def test_trace_ids_come_from_the_current_span(lines: Lines) -> None:
    context = trace.SpanContext(
        trace_id=0x4BF92F3577B34DA6A3CE929D0E0E4736,
        span_id=0x00F067AA0BA902B7,
        is_remote=False,
        trace_flags=trace.TraceFlags(1),
    )
    log = get_logger("tests.trace")
    with trace.use_span(trace.NonRecordingSpan(context)):
        log.info("traced")
    log.info("untraced")
    traced, untraced = lines.all()
    assert traced["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert traced["span_id"] == "00f067aa0ba902b7"
    assert "trace_id" not in untraced


def test_trace_ids_can_be_turned_off(configure_into: Callable[..., Lines]) -> None:
    captured = configure_into(trace_ids=False)
    context = trace.SpanContext(trace_id=1, span_id=2, is_remote=False)
    with trace.use_span(trace.NonRecordingSpan(context)):
        get_logger("tests.trace").warning("traced")
    assert "trace_id" not in captured.last()


def test_without_the_otel_extra_lines_carry_no_trace_ids(
    lines: Lines, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.trace", None)  # as if it were not installed
    monkeypatch.setattr(PIPELINE, "current_trace_ids", trace_id_lookup())
    context = trace.SpanContext(trace_id=1, span_id=2, is_remote=False)
    with trace.use_span(trace.NonRecordingSpan(context)):
        get_logger("tests.trace").warning("traced")
    assert lines.last()["event"] == "traced"
    assert "trace_id" not in lines.last()


def test_stdlib_records_come_out_as_the_same_lines(lines: Lines) -> None:
    library = logging.getLogger("tests.library")
    library.info("connected to %s:%d", "db", 5432, extra={"pool": "main", "password": "pw"})
    line = lines.last()
    assert line["logger"] == "tests.library"
    assert line["level"] == "info"
    assert line["event"] == "connected to db:5432"
    assert line["pool"] == "main"
    assert line["password"] == "***"
    assert ISO_UTC.match(line["timestamp"])


def test_stdlib_record_with_bad_arguments_still_writes_a_line(lines: Lines) -> None:
    # Straight to the handler: pytest's own capture handler would raise on this record.
    record = logging.makeLogRecord(
        {"name": "tests.library", "levelno": 30, "msg": "%d items", "args": ("many",)}
    )
    AegisHandler().handle(record)
    line = lines.last()
    assert line["event"] == "%d items"
    assert line["args"] == ["many"]
    assert "format_error" in line


def test_stack_info_is_kept(lines: Lines) -> None:
    logging.getLogger("tests.library").warning("where am I", stack_info=True)
    assert "test_stack_info_is_kept" in lines.last()["stack"]


def test_structlog_get_logger_writes_aegis_lines(lines: Lines) -> None:
    structlog.get_logger("tests.structlog").info("via structlog", key="value")
    line = lines.last()
    assert (line["logger"], line["event"], line["key"]) == (
        "tests.structlog",
        "via structlog",
        "value",
    )


def test_positional_arguments_format_the_message(lines: Lines) -> None:
    log = get_logger("tests.format")
    log.info("user %s paid %d", "kim", 3)
    log.info("no placeholder", "extra")  # noqa: PLE1205 - the mismatch is what is tested
    first, second = lines.all()
    assert first["event"] == "user kim paid 3"
    assert second["event"] == "no placeholder"
    assert second["args"] == ["extra"]


def test_every_level_method_writes_its_level(lines: Lines) -> None:
    log = get_logger("tests.levels")
    log.debug("d")
    log.info("i")
    log.warning("w")
    log.warn("w2")
    log.error("e")
    log.critical("c")
    log.fatal("f")
    log.log(25, "custom")
    assert [line["level"] for line in lines.all()] == [
        "debug",
        "info",
        "warning",
        "warning",
        "error",
        "critical",
        "critical",
        "level 25",
    ]


def test_levels_per_logger_name_apply_to_both_apis(configure_into: Callable[..., Lines]) -> None:
    captured = configure_into(level="INFO", levels={"tests.noisy": "warning"})
    native = get_logger("tests.noisy.child")
    library = logging.getLogger("tests.noisy.lib")
    native.info("hidden")
    library.info("hidden")
    native.warning("shown")
    get_logger("tests.other").info("shown")
    get_logger("tests.other").debug("hidden")
    assert [line["logger"] for line in captured.all()] == ["tests.noisy.child", "tests.other"]
    assert native.is_enabled_for(logging.WARNING)
    assert not native.is_enabled_for(logging.INFO)
    assert native.name == "tests.noisy.child"


def test_set_level_changes_levels_at_run_time(configure_into: Callable[..., Lines]) -> None:
    captured = configure_into(level="WARNING")
    log = get_logger("tests.runtime")
    log.info("before")
    set_level("debug", "tests.runtime")
    log.debug("after")
    set_level(logging.ERROR)
    get_logger("tests.elsewhere").warning("now hidden")
    assert [line["event"] for line in captured.all()] == ["after"]
    with pytest.raises(InvalidInputError) as raised:
        set_level("LOUD")
    assert raised.value.field == "level"


def test_reconfiguring_neither_duplicates_lines_nor_keeps_old_levels() -> None:
    first, second = io.BytesIO(), io.BytesIO()
    settings = LogSettings(console=None, levels={"tests.once": "ERROR"})
    configure_logging(settings, outputs=[StreamOutput(first)])
    configure_logging(LogSettings(console=None), outputs=[StreamOutput(second)])
    configure_logging(LogSettings(console=None), outputs=[StreamOutput(second)])
    logging.getLogger("tests.once").warning("once")
    get_logger("tests.once").warning("twice")
    assert first.getvalue() == b""
    assert len(second.getvalue().splitlines()) == 2
    assert len(logging.getLogger().handlers) == 1


def test_loggers_created_before_configuration_follow_it() -> None:
    early = get_logger("tests.early")
    buffer = io.BytesIO()
    configure_logging(LogSettings(console=None), outputs=[StreamOutput(buffer)])
    early.info("configured later")
    assert b"configured later" in buffer.getvalue()


def test_unconfigured_loggers_write_warnings_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    log = get_logger("tests.unconfigured")
    log.info("not shown")
    log.warning("shown")
    err = capsys.readouterr().err
    assert '"event":"shown"' in err
    assert "not shown" not in err


def test_adopted_loggers_lose_their_own_handlers(lines: Lines) -> None:
    uvicorn = logging.getLogger("uvicorn.error")
    uvicorn.addHandler(logging.StreamHandler(io.StringIO()))
    uvicorn.propagate = False
    configure_logging(LogSettings(console=None), outputs=[StreamOutput(lines.buffer)])
    uvicorn.warning("started")
    assert uvicorn.handlers == []
    assert lines.last()["logger"] == "uvicorn.error"


def test_uvicorn_no_access_log_stays_honoured_after_configuration(lines: Lines) -> None:
    import uvicorn  # a test extra

    access = logging.getLogger("uvicorn.access")
    saved = (list(access.handlers), access.propagate)
    try:
        # What `uvicorn --no-access-log` does before it imports the application.
        uvicorn.Config("app:app", access_log=False, log_config=None)
        configure_logging(LogSettings(console=None), outputs=[StreamOutput(lines.buffer)])
        # uvicorn logs access lines only when this is true (protocols/http/h11_impl.py).
        assert not access.hasHandlers()
    finally:
        access.handlers[:] = saved[0]
        access.propagate = saved[1]


def test_uvicorn_color_message_stays_out_of_the_line(lines: Lines) -> None:
    # WARNING: an earlier uvicorn server in the session may have left uvicorn.error at that.
    logging.getLogger("uvicorn.error").warning(
        "Uvicorn running on %s",
        "http://127.0.0.1:8000",
        extra={"color_message": "Uvicorn running on \x1b[1m%s\x1b[0m"},
    )
    line = lines.last()
    assert line["event"] == "Uvicorn running on http://127.0.0.1:8000"
    assert "color_message" not in line
    assert not [value for value in line.values() if "\x1b" in str(value)]


def test_without_settings_json_lines_from_info_go_to_stdout(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging()
    log = get_logger("tests.defaults")
    log.debug("not shown")
    log.info("shown")
    assert [json.loads(line)["event"] for line in capsys.readouterr().out.splitlines()] == ["shown"]


def test_json_console_goes_to_the_chosen_stream(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(LogSettings(console=ConsoleSettings(stream="stderr", format="json")))
    get_logger("tests.console").warning("to stderr")
    captured = capsys.readouterr()
    assert '"event":"to stderr"' in captured.err
    assert captured.out == ""


def test_development_console_is_human_readable(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(
        LogSettings(environment=Environment.DEVELOPMENT, console=ConsoleSettings(colors=False))
    )
    log = get_logger("tests.dev")
    log.warning("readable", user="kim")
    try:
        raise ValueError("broken")
    except ValueError:
        log.exception("failed")
    out = capsys.readouterr().out
    assert "readable" in out
    assert "user=kim" in out
    assert "Traceback (most recent call last)" in out
    assert "ValueError: broken" in out
    assert "{" not in out.splitlines()[0]


def test_user_processors_run_before_masking() -> None:
    def add_secret(_logger: object, _method: str, event: Any) -> Any:
        event["token"] = "abc"
        event["processed"] = True
        return event

    buffer = io.BytesIO()
    configure_logging(
        LogSettings(console=None), outputs=[StreamOutput(buffer)], processors=[add_secret]
    )
    get_logger("tests.proc").warning("processed")
    line = json.loads(buffer.getvalue())
    assert (line["token"], line["processed"]) == ("***", True)


def test_capture_logs_collects_masked_events(lines: Lines) -> None:
    with capture_logs() as events:
        get_logger("tests.capture").info("card declined", card="4111 1111 1111 1111")
        configure_logging(LogSettings(console=None, level="DEBUG"))
        get_logger("tests.capture").debug("after reconfiguring")
    get_logger("tests.capture").info("not captured")
    assert [event["event"] for event in events] == ["card declined", "after reconfiguring"]
    assert events[0]["card"] == "***"


def test_configured_logging_undoes_itself_after_the_block() -> None:
    root, access = logging.getLogger(), logging.getLogger("uvicorn.access")
    access_level = access.level  # uvicorn.Config(log_level="warning") may have left WARNING
    access.setLevel(logging.INFO)
    own = logging.StreamHandler(io.StringIO())
    access.addHandler(own)
    access.propagate = False
    root_before, level_before = list(root.handlers), root.level
    buffer = io.BytesIO()
    try:
        with configured_logging(LogSettings(console=None), outputs=[StreamOutput(buffer)]):
            assert access.handlers == []
            assert access.propagate
            logging.getLogger("uvicorn.access").info("GET / 200")
        assert json.loads(buffer.getvalue())["event"] == "GET / 200"
        assert (access.handlers, access.propagate) == ([own], False)
        assert (root.handlers, root.level) == (root_before, level_before)
        assert not structlog.is_configured()
    finally:
        access.removeHandler(own)
        access.propagate = True
        access.setLevel(access_level)

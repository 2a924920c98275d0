"""AccessLine writes the line Pipeline.emit writes for the same request, on every path."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, MutableMapping
from typing import Any

import pytest

from aegis.core.context import request_scope
from aegis.core.utils.masking import DEFAULT_SENSITIVE_KEYS
from aegis.log import bound_context
from aegis.log._access import ACCESS_LOGGER, AccessLine
from aegis.log._pipeline import FieldMasker, LogEntry, Pipeline

# The time of a line, wherever it shows (a cut line quotes the original's in "partial").
_TIMESTAMP = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
_CARD = "4111111111111111"


class Entries:
    """An output keeping every entry."""

    def __init__(self) -> None:
        self.entries: list[LogEntry] = []

    def write(self, entry: LogEntry) -> None:
        self.entries.append(entry)

    def close(self) -> None:
        return None


@pytest.fixture
def pipeline() -> Pipeline:
    pipeline = Pipeline()
    pipeline.outputs = (Entries(),)
    pipeline.trace_ids = False
    return pipeline


def request(**overrides: Any) -> dict[str, Any]:
    """The access line's values for a request; ``overrides`` replace some."""
    values: dict[str, Any] = {
        "method": "GET",
        "path": "/users/42",
        "route": "/users/{user_id}",
        "status": 200,
        "duration_ms": 1.234,
        "client": "127.0.0.1",
        "caller": (None, None),
        "error": None,
    }
    return {**values, **overrides}


def both_lines(pipeline: Pipeline, level: int = logging.INFO, **values: Any) -> tuple[bytes, bytes]:
    """The line AccessLine writes, and the one Pipeline.emit writes for the same fields."""
    level_name = logging.getLevelName(level).lower()
    AccessLine(pipeline).write(level, level_name, **values)
    user_id, tenant_id = values["caller"]
    # What the middleware wrote before AccessLine: the caller in the context, then emit.
    with request_scope(user_id=user_id, tenant_id=tenant_id):
        fields: dict[str, Any] = {
            "event": "request" if values["error"] is None else "request failed",
            **{key: values[key] for key in ("method", "path", "route", "status")},
            "duration_ms": values["duration_ms"],
            "client": values["client"],
        }
        if values["error"] is not None:
            fields["exc_info"] = values["error"]
        from aegis.log._context import bound_fields

        pipeline.emit(ACCESS_LOGGER, level, level_name, {**bound_fields.get(), **fields})
    output = pipeline.outputs[0]
    assert isinstance(output, Entries)
    written, emitted = output.entries[-2:]
    assert list(written.event) == list(emitted.event)  # same keys in the same order
    return _TIMESTAMP.sub(b"", written.line), _TIMESTAMP.sub(b"", emitted.line)


@pytest.fixture
def in_request() -> Iterator[None]:
    with request_scope(request_id="r-1", correlation_id="c-1", service_name="users"):
        yield


class TestSameLineAsEmit:
    """The access line is byte for byte the line emit writes (the timestamp aside)."""

    def test_a_plain_request(self, pipeline: Pipeline, in_request: None) -> None:
        """A request with its context, no caller."""
        written, emitted = both_lines(pipeline, **request())
        assert written == emitted
        assert b'"request_id":"r-1","correlation_id":"c-1","service_name":"users"' in written

    def test_the_caller_takes_its_place_in_the_context(
        self, pipeline: Pipeline, in_request: None
    ) -> None:
        """user_id before service_name, tenant_id after it."""
        written, emitted = both_lines(pipeline, **request(caller=("kim", "acme")))
        assert written == emitted
        assert b'"user_id":"kim","service_name":"users","tenant_id":"acme"' in written

    def test_the_pipeline_service_name_comes_after_the_context(self, pipeline: Pipeline) -> None:
        """No service name in context: the configured one, after tenant_id."""
        pipeline.service_name = "configured"
        written, emitted = both_lines(pipeline, **request(caller=("kim", "acme")))
        assert written == emitted
        assert b'"tenant_id":"acme","service_name":"configured"' in written

    def test_trace_ids_follow_the_context(self, pipeline: Pipeline, in_request: None) -> None:
        """The current span's ids, as emit writes them."""
        pipeline.trace_ids = True
        pipeline.current_trace_ids = lambda: ("a" * 32, "b" * 16)
        written, emitted = both_lines(pipeline, **request())
        assert written == emitted
        assert b'"trace_id":"' + b"a" * 32 in written

    @pytest.mark.parametrize(
        "values",
        [
            {"path": f"/cards/{_CARD}"},
            {"path": "/reset/password=hunter2"},
            {"path": "/x/Bearer eyJ0eXAi.eyJzdWIi.c2lnbmF0dXJl"},
            {"route": f"/cards/{_CARD}"},
            {"client": f"{_CARD}"},
            {"method": f"PASSWORD={_CARD}"},
        ],
    )
    def test_secrets_in_values_are_masked(
        self, pipeline: Pipeline, in_request: None, values: dict[str, str]
    ) -> None:
        """Text from the client is masked as emit masks it."""
        written, emitted = both_lines(pipeline, **request(**values))
        assert written == emitted
        assert _CARD.encode() not in written
        assert b"hunter2" not in written
        assert b"c2lnbmF0dXJl" not in written

    def test_missing_route_and_client(self, pipeline: Pipeline) -> None:
        """A 404 has no route; a unix-socket server gives no client."""
        written, emitted = both_lines(pipeline, **request(route=None, client=None, status=404))
        assert written == emitted
        assert b'"route":null' in written

    def test_an_error_status(self, pipeline: Pipeline, in_request: None) -> None:
        """A 5xx line at ERROR."""
        written, emitted = both_lines(pipeline, logging.ERROR, **request(status=503))
        assert written == emitted

    def test_bound_fields_come_first(self, pipeline: Pipeline, in_request: None) -> None:
        """Fields a handler bound, masked, before the request's."""
        with bound_context(order_id=7, api_key="k-secret"):
            written, emitted = both_lines(pipeline, **request())
        assert written == emitted
        assert b'"order_id":7,"api_key":"***","method":"GET"' in written

    def test_an_exception(self, pipeline: Pipeline, in_request: None) -> None:
        """A request that raised: its stack trace, at ERROR."""
        try:
            raise RuntimeError("handler exploded")
        except RuntimeError as exc:
            error = exc
        written, emitted = both_lines(pipeline, logging.ERROR, **request(error=error))
        assert written == emitted
        assert b'"event":"request failed"' in written
        assert b"handler exploded" in written

    def test_user_processors_run(self, pipeline: Pipeline, in_request: None) -> None:
        """A processor sees the access line's fields and can add one."""

        def add_region(
            logger: Any, method: str, event: MutableMapping[str, Any]
        ) -> MutableMapping[str, Any]:
            return {**event, "region": "eu"}

        pipeline.processors = (add_region,)
        written, emitted = both_lines(pipeline, **request())
        assert written == emitted
        assert b'"region":"eu"' in written

    def test_a_masked_key_masks_the_whole_value(self, pipeline: Pipeline, in_request: None) -> None:
        """Masking rules that name one of the line's keys mask its value."""
        pipeline.mask_fields = FieldMasker(frozenset({*DEFAULT_SENSITIVE_KEYS, "path"}), "***")
        written, emitted = both_lines(pipeline, **request())
        assert written == emitted
        assert b'"path":"***"' in written

    def test_a_new_masker_is_judged_again(self, pipeline: Pipeline, in_request: None) -> None:
        """Reconfigured masking applies to the next line of the same AccessLine."""
        line = AccessLine(pipeline)
        line.write(logging.INFO, "info", **request())
        pipeline.mask_fields = FieldMasker(frozenset({*DEFAULT_SENSITIVE_KEYS, "client"}), "#")
        line.write(logging.INFO, "info", **request())
        output = pipeline.outputs[0]
        assert isinstance(output, Entries)
        first, second = (entry.event["client"] for entry in output.entries)
        assert (first, second) == ("127.0.0.1", "#")

    def test_a_line_over_the_limit_is_cut(self, pipeline: Pipeline, in_request: None) -> None:
        """The size limit holds."""
        pipeline.max_line_bytes = 300
        written, emitted = both_lines(pipeline, **request(path="/" + "x" * 1000))
        assert written == emitted
        assert b'"truncated":true' in written

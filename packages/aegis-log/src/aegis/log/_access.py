"""The access line's own way through the pipeline: its keys are fixed, so only values are masked.

Every HTTP request writes one, so its usual case skips what a free-form line needs: a fields
dict merged with the bound fields, the reserved-name check, the key-by-key masking walk, and
the caller's two context variables set for the pipeline to read back. The line is the one
``Pipeline.emit`` writes for the same fields (tests/test_access_line.py compares the two);
with user processors, bound fields, an exception, or masking rules that touch one of its keys,
the line takes ``emit`` itself.
"""

from __future__ import annotations

import time
from typing import Any, Final

from aegis.core import context
from aegis.core.utils.datetime import format_datetime
from aegis.log._context import bound_fields
from aegis.log._pipeline import PIPELINE, FieldMasker, LogEntry, Pipeline
from aegis.log._render import render_json, truncate_line

ACCESS_LOGGER: Final = "aegis.access"
"""The logger name of access lines (levels are set on it in stdlib logging)."""

_REQUEST: Final = "request"
_FAILED: Final = "request failed"
# The keys the access line adds after the context, in line order.
_KEYS: Final = ("event", "method", "path", "route", "status", "duration_ms", "client")
_REQUEST_ID: Final = context.request_id
_CORRELATION_ID: Final = context.correlation_id
_SERVICE_NAME: Final = context.service_name
_USER_ID: Final = context.user_id
_TENANT_ID: Final = context.tenant_id


class AccessLine:
    """Writes the access line of one request at a time through ``pipeline``.

    Args:
        pipeline: where lines go; the process-wide pipeline unless a test gives its own.
    """

    __slots__ = ("_judged", "_pipeline")

    def __init__(self, pipeline: Pipeline = PIPELINE) -> None:
        self._pipeline = pipeline
        # The masker the verdict on the keys was taken with (the pipeline replaces its masker
        # when logging is configured again), the verdict, and the masked event text: one
        # tuple, replaced whole, so a thread never pairs one masker with another's verdict.
        self._judged: tuple[FieldMasker | None, bool, Any] = (None, False, _REQUEST)

    def write(
        self,
        level: int,
        level_name: str,
        *,
        method: object,
        path: str,
        route: str | None,
        status: object,
        duration_ms: float,
        client: str | None,
        caller: tuple[str | None, str | None],
        error: Exception | None,
    ) -> None:
        """Write the line of a request answered with ``status`` (``error``: what it raised).

        ``caller`` is the ``(user_id, tenant_id)`` the line names; the request id, correlation
        id and service name come from this request's context.
        """
        pipeline = self._pipeline
        masker = pipeline.mask_fields
        judged = self._judged
        if judged[0] is not masker:
            judged = self._judged = (masker, masker.are_plain(_KEYS), masker.value(_REQUEST))
        if error is not None or not judged[1] or pipeline.processors or bound_fields.get():
            self._write_fields(
                level, level_name, method=method, path=path, route=route, status=status,
                duration_ms=duration_ms, client=client, caller=caller, error=error,
            )  # fmt: skip
            return
        try:
            created = time.time()
            event: dict[str, Any] = {
                "timestamp": format_datetime(created),
                "level": level_name,
                "logger": ACCESS_LOGGER,
                "event": judged[2],
            }
            # The context in Pipeline.emit's order, the caller in place of user_id/tenant_id.
            value = _REQUEST_ID.get()
            if value is not None:
                event["request_id"] = value
            value = _CORRELATION_ID.get()
            if value is not None:
                event["correlation_id"] = value
            user_id, tenant_id = caller
            if user_id is not None:
                event["user_id"] = user_id
            service_name = _SERVICE_NAME.get()
            if service_name is not None:
                event["service_name"] = service_name
            if tenant_id is not None:
                event["tenant_id"] = tenant_id
            if service_name is None and pipeline.service_name is not None:
                event["service_name"] = pipeline.service_name
            if pipeline.trace_ids:
                ids = pipeline.current_trace_ids()
                if ids is not None:
                    event["trace_id"], event["span_id"] = ids
            # The keys are known to be plain: the values are masked as emit masks them, a
            # text seen before by one memo lookup (FieldMasker.mask_into, inlined).
            known, mask = masker.known_text, masker.value
            text = known(method) if type(method) is str else None
            event["method"] = text if text is not None else mask(method)
            text = known(path) if type(path) is str else None
            event["path"] = text if text is not None else mask(path)
            text = known(route) if type(route) is str else None
            event["route"] = text if text is not None else mask(route)
            event["status"] = status if type(status) is int else mask(status)
            event["duration_ms"] = duration_ms
            text = known(client) if type(client) is str else None
            event["client"] = text if text is not None else mask(client)
            line = render_json(event)
            if len(line) > pipeline.max_line_bytes:
                line = truncate_line(event, line, pipeline.max_line_bytes)
            entry = LogEntry(line, event, level, created, None)
        except Exception as exc:  # logging must never break the request
            entry = pipeline.fallback_entry(ACCESS_LOGGER, level, level_name, exc)
        pipeline.dispatch(entry)

    def _write_fields(
        self,
        level: int,
        level_name: str,
        *,
        method: object,
        path: str,
        route: str | None,
        status: object,
        duration_ms: float,
        client: str | None,
        caller: tuple[str | None, str | None],
        error: Exception | None,
    ) -> None:
        # What get_logger("aegis.access").info("request", **fields) does, without the logger's
        # two copies of the fields: bound fields first, then the request's. Called inside the
        # request's context, whose reset at its end undoes these two sets as well.
        _USER_ID.set(caller[0])
        _TENANT_ID.set(caller[1])
        fields: dict[str, Any] = {
            **bound_fields.get(),
            "event": _REQUEST if error is None else _FAILED,
            "method": method,
            "path": path,
            "route": route,
            "status": status,
            "duration_ms": duration_ms,
            "client": client,
        }
        if error is not None:
            fields["exc_info"] = error
        self._pipeline.emit(ACCESS_LOGGER, level, level_name, fields)

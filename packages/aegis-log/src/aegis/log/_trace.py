"""trace_id and span_id of the current OpenTelemetry span, when opentelemetry-api is installed."""

from __future__ import annotations

from collections.abc import Callable

TraceLookup = Callable[[], tuple[str, str] | None]
"""Return ``(trace_id, span_id)`` as lower-case hex, or ``None`` outside a valid span."""


def _no_trace_ids() -> None:
    return None


def trace_id_lookup() -> TraceLookup:
    """The lookup for this process: imports opentelemetry-api, or a no-op without the extra.

    Called by the first line that wants ids, not by ``import aegis.log``: a program that
    imports aegis.log and logs nothing, or logs with ``trace_ids=False``, never loads
    OpenTelemetry.
    """
    try:
        from opentelemetry.context import get_current  # the otel extra
        from opentelemetry.trace import get_current_span
    except ImportError:  # the otel extra is not installed: no span can exist
        return _no_trace_ids

    def current_trace_ids() -> tuple[str, str] | None:
        current = get_current()
        if not current:  # an empty OpenTelemetry context (a dict) holds no span
            return None
        context = get_current_span(current).get_span_context()
        if not context.is_valid:
            return None
        # W3C trace-context spelling, the form OpenTelemetry exporters and log backends join on
        return format(context.trace_id, "032x"), format(context.span_id, "016x")

    return current_trace_ids

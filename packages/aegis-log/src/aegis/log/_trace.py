"""trace_id and span_id of the current OpenTelemetry span, when opentelemetry-api is installed."""

from __future__ import annotations

from collections.abc import Callable

try:
    from opentelemetry.trace import get_current_span
except ImportError:  # the otel extra is not installed: no span can exist
    get_current_span = None  # type: ignore[assignment]


def _current_trace_ids() -> tuple[str, str] | None:
    context = get_current_span().get_span_context()
    if not context.is_valid:
        return None
    # W3C trace-context spelling, the form OpenTelemetry exporters and log backends join on
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


def _no_trace_ids() -> None:
    return None


current_trace_ids: Callable[[], tuple[str, str] | None] = (
    _current_trace_ids if get_current_span is not None else _no_trace_ids
)
"""Return ``(trace_id, span_id)`` as lower-case hex, or ``None`` outside a valid span."""

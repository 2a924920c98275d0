"""OpenTelemetry glue: producer and consumer spans linked through the W3C ``traceparent``."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from aegis.msg.__about__ import __version__

_PROPAGATOR = TraceContextTextMapPropagator()


def tracer() -> trace.Tracer:
    """The tracer aegis.msg records its spans with."""
    return trace.get_tracer("aegis.msg", __version__)


def tracing_enabled() -> bool:
    """Whether an SDK is installed: without one every span is a no-op, so skip making them."""
    provider = trace.get_tracer_provider()
    return not isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider)


def traceparent_of(span: trace.Span) -> str | None:
    """The W3C ``traceparent`` value naming ``span``, or ``None`` for a non-recording span."""
    if not span.get_span_context().is_valid:
        return None
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span))
    return carrier.get("traceparent")


def context_from(traceparent: str | None) -> Context | None:
    """The parent context a ``traceparent`` value names, or ``None``."""
    if traceparent is None:
        return None
    return _PROPAGATOR.extract({"traceparent": traceparent})

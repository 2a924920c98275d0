"""OpenTelemetry tracing through the API: spans, W3C propagation, and an optional SDK set-up.

Libraries and services call only ``opentelemetry-api`` here; every span is a no-op until the
application installs the SDK (``aegis-obs[sdk]``) and calls :func:`setup_tracing`.
"""

from __future__ import annotations

import functools
import importlib.util
import inspect
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Final, ParamSpec, TypeVar, cast, overload

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import ProxyTracerProvider, Span, SpanKind
from opentelemetry.util.types import AttributeValue

from aegis.core.errors import ConfigurationError
from aegis.obs._metrics import FunctionDecorator

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.sdk.trace.sampling import Sampler

_P = ParamSpec("_P")
_R = TypeVar("_R")
_TRACER_NAME: Final = "aegis.obs"

Attributes = Mapping[str, AttributeValue]
"""Span attributes: string keys, OpenTelemetry attribute values."""


def setup_tracing(
    service_name: str,
    exporter: SpanExporter | None = None,
    *,
    batch: bool = True,
    sampler: Sampler | None = None,
    resource_attributes: Attributes | None = None,
    set_global: bool = True,
) -> SdkTracerProvider:
    """Create an SDK tracer provider for the service and, by default, make it the global one.

    Args:
        service_name: The ``service.name`` resource attribute.
        exporter: Where finished spans go (OTLP, console, in-memory); none records spans
            without exporting them.
        batch: Export in batches from a background thread (production); ``False`` exports
            each span as it ends (tests, debugging).
        sampler: The sampler; the SDK's default (parent-based, always on) when ``None``.
        resource_attributes: More resource attributes (``deployment.environment``...).
        set_global: Install the provider as the process-wide tracer provider.

    Returns:
        The SDK ``TracerProvider``; call its ``shutdown()`` at exit to flush spans.

    Raises:
        ConfigurationError: The SDK is not installed, or ``set_global`` is true and a global
            SDK provider is already set (OpenTelemetry allows setting it once per process).
    """
    if importlib.util.find_spec("opentelemetry.sdk") is None:
        raise ConfigurationError(
            "tracing needs the OpenTelemetry SDK: pip install 'aegis-obs[sdk]'"
        )
    from opentelemetry.sdk.resources import Resource  # optional extra
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SimpleSpanProcessor,
    )

    if set_global and not isinstance(trace.get_tracer_provider(), ProxyTracerProvider):
        raise ConfigurationError(
            "a global tracer provider is already set; OpenTelemetry allows one per process "
            "(pass set_global=False for another provider)"
        )
    resource = Resource.create({**(resource_attributes or {}), "service.name": service_name})
    provider = TracerProvider(resource=resource, sampler=sampler)
    if exporter is not None:
        processor = BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
        provider.add_span_processor(processor)
    if set_global:
        trace.set_tracer_provider(provider)
    return provider


class _CarrierGetter(Getter[Mapping[str, str]]):
    def get(self, carrier: Mapping[str, str], key: str) -> list[str] | None:
        value = carrier.get(key)
        return None if value is None else [value]

    def keys(self, carrier: Mapping[str, str]) -> list[str]:
        return list(carrier)


_GETTER: Final = _CarrierGetter()


def inject(carrier: MutableMapping[str, str] | None = None) -> MutableMapping[str, str]:
    """Write the current trace context (``traceparent``, ``tracestate``) into ``carrier``.

    Use it for outgoing HTTP headers and message headers. It writes nothing when no trace is
    current.

    Returns:
        ``carrier``, or a new dict when none was given.

    Example:
        >>> producer.produce(topic, value, headers=list(inject().items()))
    """
    carrier = {} if carrier is None else carrier
    propagate.inject(carrier)
    return carrier


def extract(
    carrier: Mapping[str, str | bytes] | Iterable[tuple[str, str | bytes]],
) -> Context:
    """Read a trace context from incoming headers into an OpenTelemetry ``Context``.

    ``carrier`` is a mapping or a list of ``(name, value)`` pairs (Kafka message headers);
    names match case-insensitively and ``bytes`` values are decoded. Pass the result as
    ``parent`` to :func:`span` to continue the sender's trace.
    """
    pairs = carrier.items() if isinstance(carrier, Mapping) else carrier
    headers = {
        name.lower(): value.decode("latin-1") if isinstance(value, bytes) else value
        for name, value in pairs
    }
    return propagate.extract(headers, getter=_GETTER)


@contextmanager
def span(
    name: str,
    *,
    attributes: Attributes | None = None,
    kind: SpanKind = SpanKind.INTERNAL,
    parent: Context | None = None,
) -> Iterator[Span]:
    """Run the block in a new span, current for its duration, in sync or async code.

    An exception leaving the block is recorded on the span and sets its status to ERROR, then
    propagates. Without the SDK the span is a no-op.

    Args:
        name: The span name (a low-cardinality operation name, not an id).
        attributes: Attributes set at start.
        kind: The span kind (``CLIENT``, ``PRODUCER``, ``CONSUMER``...).
        parent: The parent context (from :func:`extract`); the current span when ``None``.

    Example:
        >>> with span("price-order", attributes={"order.items": 3}) as current:
        ...     current.set_attribute("order.total", 42)
    """
    tracer = trace.get_tracer(_TRACER_NAME)
    with tracer.start_as_current_span(
        name, context=parent, kind=kind, attributes=attributes
    ) as current:
        yield current


@overload
def traced(function: Callable[_P, _R], /) -> Callable[_P, _R]: ...
@overload
def traced(
    name: str | None = None,
    /,
    *,
    attributes: Attributes | None = None,
    kind: SpanKind = SpanKind.INTERNAL,
) -> FunctionDecorator: ...
def traced(
    name: str | Callable[_P, _R] | None = None,
    /,
    *,
    attributes: Attributes | None = None,
    kind: SpanKind = SpanKind.INTERNAL,
) -> Callable[_P, _R] | FunctionDecorator:
    """Run each call of the decorated sync or async function in its own span.

    Use it bare (``@traced``: the span is named ``module.qualname``) or with a name
    (``@traced("charge-card")``). Exceptions are recorded as in :func:`span`.
    """
    if callable(name):
        return _traced(name, None, attributes, kind)
    return _decorator(name, attributes, kind)


def _decorator(
    name: str | None, attributes: Attributes | None, kind: SpanKind
) -> FunctionDecorator:
    def decorate(function: Callable[_P, _R]) -> Callable[_P, _R]:
        return _traced(function, name, attributes, kind)

    return decorate


def _traced(
    function: Callable[_P, _R],
    name: str | None,
    attributes: Attributes | None,
    kind: SpanKind,
) -> Callable[_P, _R]:
    span_name = name or f"{function.__module__}.{function.__qualname__}"
    if inspect.iscoroutinefunction(function):
        async_function = cast("Callable[_P, Awaitable[object]]", function)

        @functools.wraps(function)
        async def run_async(*args: _P.args, **kwargs: _P.kwargs) -> object:
            with span(span_name, attributes=attributes, kind=kind):
                return await async_function(*args, **kwargs)

        return cast("Callable[_P, _R]", run_async)

    @functools.wraps(function)
    def run(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        with span(span_name, attributes=attributes, kind=kind):
            return function(*args, **kwargs)

    return run


def current_trace_ids() -> dict[str, str]:
    """Return ``{"trace_id": 32 hex digits, "span_id": 16 hex digits}`` of the current span.

    Empty when no valid span is current. Log processors read the same values from the
    current span; this helper is for responses and error reports.
    """
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return {}
    return {"trace_id": f"{context.trace_id:032x}", "span_id": f"{context.span_id:016x}"}


__all__ = [
    "Attributes",
    "current_trace_ids",
    "extract",
    "inject",
    "setup_tracing",
    "span",
    "traced",
]

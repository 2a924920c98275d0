"""The spans an OTLP/HTTP exporter sent to an :class:`~aegis.testing.HttpRecorder`, decoded.

Needs the ``otlp`` extra (``opentelemetry-proto``), which every OTLP exporter installs anyway.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

try:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
except ModuleNotFoundError as exc:  # pragma: no cover - depends on the installed extras
    raise ModuleNotFoundError(
        f"aegis.testing.exported_spans needs {exc.name}: pip install 'aegis-testing[otlp]'",
        name=exc.name,
    ) from exc


@dataclass(frozen=True)
class ExportedSpan:
    """One span as the collector received it; ids are lower-case hex, as in ``traceparent``."""

    name: str
    service: str
    trace_id: str
    span_id: str
    parent_span_id: str | None
    kind: int
    """OTLP's ``SpanKind`` number: 1 internal, 2 server, 3 client, 4 producer, 5 consumer."""
    attributes: dict[str, Any] = field(default_factory=dict)


def exported_spans(bodies: Iterable[bytes]) -> list[ExportedSpan]:
    """Decode OTLP/HTTP protobuf export requests (``HttpRecorder.bodies``) into their spans."""
    spans: list[ExportedSpan] = []
    for body in bodies:
        request = ExportTraceServiceRequest.FromString(body)
        for resource_spans in request.resource_spans:
            resource = _attributes(resource_spans.resource.attributes)
            service = str(resource.get("service.name", ""))
            for scope_spans in resource_spans.scope_spans:
                spans.extend(
                    ExportedSpan(
                        name=span.name,
                        service=service,
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex() or None,
                        kind=span.kind,
                        attributes=_attributes(span.attributes),
                    )
                    for span in scope_spans.spans
                )
    return spans


def _attributes(pairs: Iterable[KeyValue]) -> dict[str, Any]:
    return {pair.key: _value(pair.value) for pair in pairs}


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    return None if kind is None else getattr(value, kind)

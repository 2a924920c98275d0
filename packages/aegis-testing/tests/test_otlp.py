"""exported_spans(): what an OTLP/HTTP exporter POSTed to an HttpRecorder, as spans."""

import urllib.request

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from aegis.testing import ExportedSpan, HttpRecorder, exported_spans

TRACE_ID = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")


def export_request() -> bytes:
    """One request as the SDK's exporter builds it: a resource with two spans."""
    root = Span(trace_id=TRACE_ID, span_id=bytes.fromhex("b7ad6b7169203331"), name="GET /users")
    root.kind = Span.SPAN_KIND_SERVER
    root.attributes.append(KeyValue(key="http.status_code", value=AnyValue(int_value=201)))
    child = Span(
        trace_id=TRACE_ID,
        span_id=bytes.fromhex("00f067aa0ba902b7"),
        parent_span_id=bytes.fromhex("b7ad6b7169203331"),
        name="INSERT users",
    )
    child.attributes.append(
        KeyValue(
            key="tags",
            value=AnyValue(
                array_value=ArrayValue(
                    values=[AnyValue(string_value="a"), AnyValue(bool_value=True)]
                )
            ),
        )
    )
    resource = Resource(
        attributes=[KeyValue(key="service.name", value=AnyValue(string_value="users"))]
    )
    request = ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(resource=resource, scope_spans=[ScopeSpans(spans=[root, child])])
        ]
    )
    body: bytes = request.SerializeToString()
    return body


def test_the_spans_of_an_export_request_are_decoded_with_their_ids_and_service() -> None:
    with HttpRecorder() as collector:
        post = urllib.request.Request(
            f"http://{collector.address}/v1/traces",
            data=export_request(),
            headers={"Content-Type": "application/x-protobuf", "X-Api-Key": "k1"},
        )
        with urllib.request.urlopen(post, timeout=5) as answer:  # noqa: S310 - a local URL
            assert answer.status == 200

    (request,) = collector.requests
    assert request.path == "/v1/traces"
    assert request.headers["x-api-key"] == "k1"
    assert exported_spans(collector.bodies) == [
        ExportedSpan(
            name="GET /users",
            service="users",
            trace_id="0af7651916cd43dd8448eb211c80319c",
            span_id="b7ad6b7169203331",
            parent_span_id=None,
            kind=2,
            attributes={"http.status_code": 201},
        ),
        ExportedSpan(
            name="INSERT users",
            service="users",
            trace_id="0af7651916cd43dd8448eb211c80319c",
            span_id="00f067aa0ba902b7",
            parent_span_id="b7ad6b7169203331",
            kind=0,
            attributes={"tags": ["a", True]},
        ),
    ]

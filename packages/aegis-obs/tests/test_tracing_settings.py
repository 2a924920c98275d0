"""TracingSettings: spans exported over OTLP/HTTP to a real local receiver."""

import pytest
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from pydantic import ValidationError

from aegis.obs import TracingSettings, setup_tracing
from aegis.testing import HttpRecorder, exported_spans


def test_spans_reach_the_endpoint_with_the_service_name_and_the_secret_headers() -> None:
    with HttpRecorder() as collector:
        settings = TracingSettings(
            endpoint=f"http://{collector.address}/v1/traces",
            headers={"x-api-key": "s3cret"},
            batch=False,
        )
        provider = setup_tracing(
            "orders", settings.exporter(), batch=settings.batch, set_global=False
        )
        with provider.get_tracer("test").start_as_current_span("place order"):
            pass
        provider.shutdown()

    (request,) = collector.requests
    assert request.path == "/v1/traces"
    assert request.headers["x-api-key"] == "s3cret"
    (span,) = exported_spans(collector.bodies)
    assert (span.name, span.service) == ("place order", "orders")
    assert "s3cret" not in repr(settings)


def test_a_sample_ratio_of_zero_drops_new_traces_but_follows_a_sampled_parent() -> None:
    with HttpRecorder() as collector:
        settings = TracingSettings(
            endpoint=f"http://{collector.address}/v1/traces", sample_ratio=0.0, batch=False
        )
        provider = setup_tracing(
            "orders", settings.exporter(), sampler=settings.sampler(), set_global=False
        )
        tracer = provider.get_tracer("test")
        with tracer.start_as_current_span("new trace"):
            pass
        parent = SpanContext(
            trace_id=0x0AF7651916CD43DD8448EB211C80319C,
            span_id=0xB7AD6B7169203331,
            is_remote=True,
            trace_flags=TraceFlags(TraceFlags.SAMPLED),
        )
        context = trace.set_span_in_context(NonRecordingSpan(parent))
        with tracer.start_as_current_span("caller sampled", context=context):
            pass
        provider.shutdown()

    spans = exported_spans(collector.bodies)
    assert [(span.name, span.trace_id) for span in spans] == [
        ("caller sampled", "0af7651916cd43dd8448eb211c80319c")
    ]


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"endpoint": "collector:4318"}, "endpoint"),
        ({"endpoint": "http://c/v1/traces", "sample_ratio": 1.5}, "sample_ratio"),
        ({"endpoint": "http://c/v1/traces", "timeout_seconds": 0}, "timeout_seconds"),
        ({"endpoint": "http://c/v1/traces", "exporter": "zipkin"}, "exporter"),
    ],
)
def test_bad_settings_are_refused_naming_the_field(fields: dict[str, object], named: str) -> None:
    with pytest.raises(ValidationError) as caught:
        TracingSettings.model_validate(fields)
    assert named in str(caught.value)

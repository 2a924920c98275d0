"""TracingSettings: where a service's spans go (OTLP over HTTP) and how many are kept.

The exporter and the sampler are OpenTelemetry's own (``aegis-obs[otlp]``); the settings only
name them, so a collector, Jaeger, Tempo or any OTLP/HTTP endpoint receives the spans.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from aegis.core.utils.lazy import extra_required

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.sdk.trace.sampling import Sampler


class TracingSettings(BaseModel):
    """Export the service's spans over OTLP/HTTP (``pip install 'aegis-obs[otlp]'``).

    Example:
        >>> settings = TracingSettings(endpoint="http://collector:4318/v1/traces")
        >>> provider = setup_tracing("users", settings.exporter(), sampler=settings.sampler())
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    endpoint: str = Field(
        pattern=r"^https?://",
        description="The OTLP/HTTP traces URL, e.g. http://collector:4318/v1/traces.",
    )
    headers: dict[str, SecretStr] = Field(
        default_factory=dict, description="Sent with every export (an API key); never logged."
    )
    sample_ratio: float = Field(
        default=1.0,
        ge=0.0,
        le=1.0,
        description="Share of new traces recorded; a request that arrives inside a sampled "
        "trace (a traceparent header or event) follows its parent's decision.",
    )
    timeout_seconds: float = Field(default=10.0, gt=0, description="Per export request.")
    batch: bool = Field(
        default=True,
        description="Export in batches from a background thread (production); False exports "
        "each span as it ends (debugging).",
    )

    def exporter(self) -> SpanExporter:
        """OpenTelemetry's OTLP/HTTP span exporter for :attr:`endpoint`."""
        with extra_required(
            "TracingSettings.exporter",
            {"opentelemetry": "aegis-obs[otlp]", "google": "aegis-obs[otlp]"},
        ):
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # the otlp extra
                OTLPSpanExporter,
            )
        headers = {name: value.get_secret_value() for name, value in self.headers.items()}
        return OTLPSpanExporter(
            endpoint=self.endpoint, headers=headers, timeout=int(self.timeout_seconds)
        )

    def sampler(self) -> Sampler:
        """Parent-based: follow the caller's decision, else keep :attr:`sample_ratio` of traces."""
        with extra_required("TracingSettings.sampler", {"opentelemetry": "aegis-obs[sdk]"}):
            from opentelemetry.sdk.trace.sampling import (  # the sdk extra
                ParentBased,
                TraceIdRatioBased,
            )
        return ParentBased(TraceIdRatioBased(self.sample_ratio))

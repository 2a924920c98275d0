"""Fixtures for aegis-service's tests: recorded spans, captured lines, a token factory."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from aegis.log import LogSettings, configured_logging
from aegis.testing import LogLines

# A provider of the tests' own, handed to bootstrap() and to FastAPI's telemetry: the global
# provider may belong to another member's tests in the same session.
EXPORTER = InMemorySpanExporter()
PROVIDER = TracerProvider()
PROVIDER.add_span_processor(SimpleSpanProcessor(EXPORTER))


@pytest.fixture(autouse=True)
def _uvicorn_loggers_restored() -> Iterator[None]:
    """bootstrap() turns uvicorn's access log off for the process: undo it after each test."""
    loggers = [logging.getLogger(name) for name in ("uvicorn", "uvicorn.error", "uvicorn.access")]
    saved = [(logger, list(logger.handlers), logger.propagate, logger.level) for logger in loggers]
    yield
    for logger, handlers, propagate, level in saved:
        logger.handlers[:] = handlers
        logger.propagate = propagate
        logger.setLevel(level)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass(frozen=True)
class Tracing:
    """The tracer provider to hand to apps, and the spans it recorded in this test."""

    provider: TracerProvider
    exporter: InMemorySpanExporter

    def server_spans(self) -> list[ReadableSpan]:
        """The SERVER spans recorded so far."""
        spans = self.exporter.get_finished_spans()
        return [span for span in spans if span.kind is SpanKind.SERVER]


@pytest.fixture
def tracing() -> Iterator[Tracing]:
    """Spans recorded for this test only."""
    EXPORTER.clear()
    yield Tracing(PROVIDER, EXPORTER)
    EXPORTER.clear()


@pytest.fixture
def lines() -> Iterator[LogLines]:
    """Every line logged while the test runs; the process's logging is restored afterwards.

    bootstrap() configures logging again inside the block (with this output added); leaving
    the block puts back the root and uvicorn loggers and structlog's defaults.
    """
    captured = LogLines()
    with configured_logging(LogSettings(console=None), outputs=[captured]):
        yield captured

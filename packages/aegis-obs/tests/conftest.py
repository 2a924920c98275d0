"""Fixtures for aegis-obs's tests: a fresh metric registry, recorded spans, a scraper."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from starlette.types import ASGIApp

from aegis.obs import setup_tracing

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
Scrape = Callable[[ASGIApp], Awaitable[Samples]]

# OpenTelemetry lets a process set its global tracer provider once: every test shares this one
# and reads the spans it recorded through the ``spans`` fixture.
_EXPORTER = InMemorySpanExporter()
_PROVIDER = setup_tracing("aegis-obs-tests", _EXPORTER, batch=False)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def registry() -> CollectorRegistry:
    """A registry of this test's own, so counts start at zero."""
    return CollectorRegistry()


@pytest.fixture
def tracer_provider() -> TracerProvider:
    """The global SDK provider every test records spans with."""
    assert isinstance(_PROVIDER, TracerProvider)
    return _PROVIDER


@pytest.fixture
def spans() -> Iterator[Callable[[], tuple[ReadableSpan, ...]]]:
    """``spans()``: the spans finished since the test started."""
    _EXPORTER.clear()
    yield _EXPORTER.get_finished_spans
    _EXPORTER.clear()


def parse(text: str) -> Samples:
    """Parse Prometheus text with prometheus_client's own parser into {(name, labels): value}."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@pytest.fixture
def scrape() -> Scrape:
    """``await scrape(app)``: GET /metrics from the app and parse it."""

    async def get(app: ASGIApp) -> Samples:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            response = await client.get("/metrics")
        assert response.status_code == 200
        return parse(response.text)

    return get


def client_for(app: ASGIApp) -> httpx.AsyncClient:
    """An httpx client that calls the app in-process."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


@pytest.fixture
def client() -> Callable[[ASGIApp], httpx.AsyncClient]:
    """``client(app)``: an httpx client that calls the app in-process through ASGI."""
    return client_for

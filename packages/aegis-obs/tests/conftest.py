"""Fixtures for aegis-obs's tests: a fresh metric registry, recorded spans, a scraper."""

from __future__ import annotations

import socket
import threading
from collections.abc import Awaitable, Callable, Iterator

import httpx
import pytest
import uvicorn
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


class Served:
    """An ASGI app under uvicorn in a thread, listening before uvicorn even starts.

    The socket is bound and listening first, so a client may connect at once (the kernel
    queues it) without waiting for start-up.
    """

    def __init__(self, app: ASGIApp) -> None:
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen()
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self._thread = threading.Thread(target=self._server.run, args=([self._listener],))
        self._thread.start()

    def stop(self) -> None:
        """Stop after the requests in flight finished (their server spans have ended)."""
        self._server.should_exit = True
        self._thread.join()
        self._listener.close()


@pytest.fixture
def serve() -> Iterator[Callable[[ASGIApp], Served]]:
    """``serve(app)``: a :class:`Served` app; stopped at the end of the test at the latest."""
    running: list[Served] = []

    def start(app: ASGIApp) -> Served:
        running.append(Served(app))
        return running[-1]

    yield start
    for served in running:
        served.stop()

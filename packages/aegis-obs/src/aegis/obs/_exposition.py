"""The ``/metrics`` endpoint: Prometheus text or OpenMetrics, one process or many workers."""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.concurrency import run_in_threadpool
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from aegis.core.metrics import MULTIPROCESS_DIR_VARIABLE, multiprocess_mode


def _render(registry: CollectorRegistry, accept: str) -> tuple[bytes, str]:
    if multiprocess_mode():
        # Each worker writes its samples to files in that directory; a scrape reaches one
        # worker, which must sum every worker's files (prometheus_client's documented recipe:
        # a fresh registry per scrape, never the default one).
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    encoder, content_type = choose_encoder(accept)
    return encoder(registry), content_type


class MetricsEndpoint:
    """ASGI app that answers a Prometheus scrape.

    It answers in the OpenMetrics format when the ``Accept`` header asks for
    ``application/openmetrics-text``, else in the Prometheus text format. When
    ``PROMETHEUS_MULTIPROC_DIR`` is set (gunicorn or ``uvicorn --workers``), it sums the samples
    every worker wrote there, whichever worker the scrape reaches; that directory must be empty
    when the server starts. Rendering runs in a worker thread, off the event loop.

    Args:
        registry: The registry to expose in single-process mode; the default one when ``None``.

    Example:
        >>> app.mount("/metrics", MetricsEndpoint())
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self._registry = REGISTRY if registry is None else registry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Render the metrics and send them as the response."""
        accept = ""
        for name, value in scope.get("headers", []):
            if name == b"accept":
                accept = value.decode("latin-1")
        body, content_type = await run_in_threadpool(_render, self._registry, accept)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", content_type.encode("latin-1")),
                    (b"content-length", str(len(body)).encode("latin-1")),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def metrics_route(path: str = "/metrics", registry: CollectorRegistry | None = None) -> Route:
    """Return a ``GET`` route serving :class:`MetricsEndpoint` at ``path``.

    Example:
        >>> app = Starlette(routes=[metrics_route()])
        >>> fastapi_app.router.routes.append(metrics_route())
    """
    return Route(path, MetricsEndpoint(registry), methods=["GET"], include_in_schema=False)


__all__ = ["MULTIPROCESS_DIR_VARIABLE", "MetricsEndpoint", "metrics_route"]

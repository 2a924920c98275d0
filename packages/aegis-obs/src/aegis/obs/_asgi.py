"""Pure ASGI middleware: Prometheus HTTP/WebSocket metrics and an OpenTelemetry server span.

The route label comes from the route the application's router picked, never from the raw path.
Starlette (and FastAPI) record that route as ``scope["route"]``; the middleware hands the app a
scope that notices the assignment, so it learns the route template the moment the router
matches, without matching a second time (the cost measured in prometheus-fastapi-instrumentator
and starlette-exporter), and can count the request as in progress under its route.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from contextvars import Token
from typing import Any, Final

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import ProxyTracerProvider, Span, SpanKind, StatusCode, TracerProvider
from prometheus_client import CollectorRegistry, Histogram
from starlette.routing import Host, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aegis.obs._metrics import counter, gauge, histogram

UNMATCHED_ROUTE: Final = "<unmatched>"
"""The ``route`` label of requests no route matched (404s, slash redirects)."""

DEFAULT_EXCLUDED_PATHS: Final = ("/metrics", "/health*")
"""Paths the middleware ignores by default: scrapes and probes would drown real traffic."""

DEFAULT_SIZE_BUCKETS: Final = (100.0, 1_000.0, 10_000.0, 100_000.0, 1_000_000.0, 10_000_000.0)
"""Upper bounds, in bytes, of the response size histogram."""

_METHODS: Final = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE", "QUERY"}
)
# A client can send any token as the method; unknown ones share one label value (as in the
# OpenTelemetry HTTP conventions) so they cannot grow the label set.
_OTHER_METHOD: Final = "_OTHER"
_WEBSOCKET_METHOD: Final = "WEBSOCKET"
_TRACER_NAME: Final = "aegis.obs"


class _HeaderGetter(Getter[Sequence[tuple[bytes, bytes]]]):
    """Reads W3C trace headers from ASGI's list of (name, value) byte pairs."""

    def get(self, carrier: Sequence[tuple[bytes, bytes]], key: str) -> list[str] | None:
        wanted = key.lower().encode("latin-1")
        values = [value.decode("latin-1") for name, value in carrier if name == wanted]
        return values or None

    def keys(self, carrier: Sequence[tuple[bytes, bytes]]) -> list[str]:
        return [name.decode("latin-1") for name, _ in carrier]


_GETTER: Final = _HeaderGetter()


class _RouteChildren:
    """The pre-bound metric children of one (method, route) pair."""

    __slots__ = ("duration", "in_progress", "size", "totals")

    def __init__(self, metrics: _HttpMetrics, method: str, route: str) -> None:
        self.duration = metrics.duration.labels(method, route)
        self.in_progress = metrics.in_progress.labels(method, route)
        self.size = metrics.size.labels(method, route)
        self.totals: dict[int, Any] = {}


class _HttpMetrics:
    """The four HTTP metrics in one registry, with a cache of label children."""

    def __init__(
        self,
        registry: CollectorRegistry | None,
        buckets: Sequence[float],
        size_buckets: Sequence[float],
    ) -> None:
        labels = ("method", "route")
        self.requests = counter(
            "requests_total",
            "HTTP requests and WebSocket sessions handled, by route template and status code.",
            (*labels, "status"),
            namespace="aegis",
            subsystem="http",
            registry=registry,
        )
        self.duration = histogram(
            "request_duration_seconds",
            "Time from receiving a request to sending the last byte of its response.",
            labels,
            namespace="aegis",
            subsystem="http",
            registry=registry,
            buckets=buckets,
        )
        self.in_progress = gauge(
            "requests_in_progress",
            "Requests and WebSocket sessions being served, counted from route selection.",
            labels,
            namespace="aegis",
            subsystem="http",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.size = histogram(
            "response_size_bytes",
            "Bytes of response body sent.",
            labels,
            namespace="aegis",
            subsystem="http",
            registry=registry,
            buckets=size_buckets,
        )
        self._children: dict[tuple[str, str], _RouteChildren] = {}

    def children(self, method: str, route: str) -> _RouteChildren:
        key = (method, route)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = _RouteChildren(self, method, route)
        return found

    def count(self, children: _RouteChildren, method: str, route: str, status: int) -> None:
        child = children.totals.get(status)
        if child is None:
            child = children.totals[status] = self.requests.labels(method, route, str(status))
        child.inc()


class _Exchange:
    """What the middleware learns about one request while the app serves it."""

    __slots__ = (
        "children", "container", "method", "metrics", "prefix", "route", "selected", "span",
    )  # fmt: skip

    def __init__(self, method: str, metrics: _HttpMetrics | None, span: Span | None) -> None:
        self.method = method
        self.metrics = metrics
        self.span = span
        self.prefix = ""
        self.route = UNMATCHED_ROUTE
        self.container = False
        self.selected: object = None
        self.children: _RouteChildren | None = None

    def route_selected(self, route: object) -> None:
        # A mount (or host) sets itself first, then its own router sets the inner route; the
        # mount's path_format is "/api/{path}" and what it adds to its children is "/api".
        if self.container:
            self.prefix = self.route.removesuffix("/{path}")
        self.selected = route
        self.container = isinstance(route, Mount | Host)
        self.route = self.prefix + str(getattr(route, "path_format", ""))
        if self.metrics is not None:
            if self.children is not None:
                self.children.in_progress.dec()
            self.children = self.metrics.children(self.method, self.route)
            self.children.in_progress.inc()
        if self.span is not None:
            self.span.update_name(f"{self.method} {self.route}")
            self.span.set_attribute("http.route", self.route)


class _WatchedScope(dict[str, Any]):
    """The scope handed to the app: reports the router's ``route`` and mirrors every write."""

    __slots__ = ("_exchange", "_origin")

    def __init__(self, origin: Scope, exchange: _Exchange) -> None:
        super().__init__(origin)
        self._origin = origin
        self._exchange = exchange

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        # Middleware outside this one (an access log) may read what the router wrote.
        self._origin[key] = value
        if key == "route" and value is not self._exchange.selected:
            self._exchange.route_selected(value)

    def update(self, *args: Any, **kwargs: Any) -> None:
        # FastAPI's router writes the route it picked with update(), Starlette's with [].
        changes = dict(*args, **kwargs)
        super().update(changes)
        self._origin.update(changes)
        route = changes.get("route")
        if route is not None and route is not self._exchange.selected:
            self._exchange.route_selected(route)


class ObservabilityMiddleware:
    """Pure ASGI middleware that records Prometheus metrics and an OpenTelemetry server span.

    Metrics (HTTP requests and WebSocket sessions; WebSockets use the method ``WEBSOCKET``):

    - ``aegis_http_requests_total{method,route,status}``
    - ``aegis_http_request_duration_seconds{method,route}`` (histogram, ``buckets``)
    - ``aegis_http_requests_in_progress{method,route}`` (``livesum`` across workers)
    - ``aegis_http_response_size_bytes{method,route}`` (histogram, ``size_buckets``)

    ``route`` is the template the router matched (``/users/{user_id}``, mount prefixes
    included); requests no route matched share :data:`UNMATCHED_ROUTE`. Unknown methods share
    ``_OTHER``. A request that raises before responding counts as status 500.

    Tracing: each request runs in a ``SERVER`` span named ``"{method} {route}"``, a child of the
    incoming W3C ``traceparent``, with the stable HTTP semantic-convention attributes; a 5xx or
    an exception sets the span's status to ERROR. The span is the current span while the app
    runs, so log processors and :func:`aegis.obs.inject` see its trace id. Without the
    OpenTelemetry SDK no span is created; an incoming ``traceparent`` is still made current,
    so outgoing calls continue the caller's trace.

    Args:
        app: The ASGI app to wrap.
        registry: Where the metrics live; the default registry when ``None``.
        buckets: Upper bounds, in seconds, of the duration histogram.
        size_buckets: Upper bounds, in bytes, of the response size histogram.
        exclude_paths: Paths to leave alone; an entry ending in ``*`` is a prefix.
        metrics: Record the Prometheus metrics.
        tracing: Create server spans and read ``traceparent``.
        tracer_provider: The provider of the spans; the global one when ``None``.

    Example:
        >>> app = Starlette(routes=[...], middleware=[Middleware(ObservabilityMiddleware)])
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        registry: CollectorRegistry | None = None,
        buckets: Sequence[float] = Histogram.DEFAULT_BUCKETS,
        size_buckets: Sequence[float] = DEFAULT_SIZE_BUCKETS,
        exclude_paths: Iterable[str] = DEFAULT_EXCLUDED_PATHS,
        metrics: bool = True,
        tracing: bool = True,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        self.app = app
        self._metrics = _HttpMetrics(registry, buckets, size_buckets) if metrics else None
        self._tracing = tracing
        self._tracer_provider = tracer_provider
        patterns = list(exclude_paths)
        self._excluded_exact = frozenset(p for p in patterns if not p.endswith("*"))
        self._excluded_prefixes = tuple(p[:-1] for p in patterns if p.endswith("*"))

    def _tracer(self) -> trace.Tracer | None:
        provider = self._tracer_provider or trace.get_tracer_provider()
        if isinstance(provider, ProxyTracerProvider | trace.NoOpTracerProvider):
            return None
        return provider.get_tracer(_TRACER_NAME)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one connection through the wrapped app, measuring it."""
        kind = scope["type"]
        if kind != "http" and kind != "websocket":  # noqa: PLR1714 (two compares beat a set)
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path in self._excluded_exact or path.startswith(self._excluded_prefixes):
            await self.app(scope, receive, send)
            return
        if kind == "http":
            method = scope["method"]
            if method not in _METHODS:
                method = _OTHER_METHOD
        else:
            method = _WEBSOCKET_METHOD
        started = time.perf_counter()
        span, token = self._start_span(scope, method) if self._tracing else (None, None)
        exchange = _Exchange(method, self._metrics, span)
        status = 0
        size = 0
        failure: BaseException | None = None

        async def send_measured(message: Message) -> None:
            nonlocal status, size
            message_type = message["type"]
            if message_type == "http.response.body":
                size += len(message.get("body", b""))
            elif message_type == "http.response.start":
                status = message["status"]
            elif message_type == "websocket.accept":
                status = 101
            elif message_type == "websocket.close" and status == 0:
                status = 403  # closed before accepting: the server answers 403
            elif message_type == "websocket.http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(_WatchedScope(scope, exchange), receive, send_measured)
        except BaseException as exc:
            failure = exc
            raise
        finally:
            self._finish(exchange, status, size, started, failure)
            if token is not None:
                otel_context.detach(token)

    def _start_span(self, scope: Scope, method: str) -> tuple[Span | None, Token[Context] | None]:
        tracer = self._tracer()
        headers = scope["headers"]
        if tracer is None:
            # No SDK: no span to record, but keep the caller's trace current for propagation.
            for name, _ in headers:
                if name == b"traceparent":
                    return None, otel_context.attach(propagate.extract(headers, getter=_GETTER))
            return None, None
        parent = propagate.extract(headers, getter=_GETTER)
        attributes: dict[str, str | int] = {
            "http.request.method": method if method != _WEBSOCKET_METHOD else "GET",
            "url.path": scope["path"],
            "url.scheme": scope.get("scheme", "http"),
            "network.protocol.version": scope.get("http_version", "1.1"),
        }
        client = scope.get("client")
        if client:
            attributes["client.address"] = client[0]
        span = tracer.start_span(
            method, context=parent, kind=SpanKind.SERVER, attributes=attributes
        )
        return span, otel_context.attach(trace.set_span_in_context(span, parent))

    def _finish(
        self,
        exchange: _Exchange,
        status: int,
        size: int,
        started: float,
        failure: BaseException | None,
    ) -> None:
        # No response started: the server answers 500 (after an exception or an app that
        # returned without responding).
        status = status or 500
        metrics = self._metrics
        if metrics is not None:
            children = exchange.children
            if children is None:
                children = metrics.children(exchange.method, exchange.route)
            else:
                children.in_progress.dec()
            children.duration.observe(time.perf_counter() - started)
            if exchange.method != _WEBSOCKET_METHOD:
                children.size.observe(size)
            metrics.count(children, exchange.method, exchange.route, status)
        span = exchange.span
        if span is not None:
            span.set_attribute("http.response.status_code", status)
            if failure is not None:
                span.record_exception(failure)
                span.set_attribute("error.type", type(failure).__qualname__)
                span.set_status(StatusCode.ERROR, f"{type(failure).__qualname__}: {failure}")
            elif status >= 500:  # noqa: PLR2004 (semantic conventions: only 5xx fail a server span)
                span.set_attribute("error.type", str(status))
                span.set_status(StatusCode.ERROR)
            span.end()


__all__ = [
    "DEFAULT_EXCLUDED_PATHS",
    "DEFAULT_SIZE_BUCKETS",
    "UNMATCHED_ROUTE",
    "ObservabilityMiddleware",
]

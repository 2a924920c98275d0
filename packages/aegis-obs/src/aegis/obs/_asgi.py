"""Pure ASGI middleware: Prometheus HTTP/WebSocket metrics and an OpenTelemetry server span.

The route label comes from the route the application's router picked, never from the raw path.
Starlette (and FastAPI) record that route as ``scope["route"]``; the middleware hands the app a
scope that notices the assignment, so it learns the route template the moment the router
matches, without matching a second time (the cost measured in prometheus-fastapi-instrumentator
and starlette-exporter), and can count the request as in progress under its route.

The per-request path is kept short on purpose (benchmarks/obs_overhead.py): one object per
request (scope copy, status, size and send in one), the metric figures of a (method, route)
found with one dict lookup and updated under one lock, the tracer looked up once.
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

from aegis.core.paths import PathMatcher, route_template
from aegis.obs._http_metrics import HttpMetrics, RouteMetrics, http_metrics

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


class _Exchange(dict[str, Any]):
    """The scope handed to the app, and what the middleware learns while the app serves it.

    One object per request: the scope copy that notices the router's ``route``, the status and
    size the app sends, and the metric children of the route. Every write to the scope is
    mirrored into the server's scope, so middleware outside this one (an access log) reads
    what the router wrote.
    """

    __slots__ = (
        "_origin", "_send", "children", "container", "method", "metrics", "named", "prefix",
        "route", "selected", "size", "span", "status",
    )  # fmt: skip

    def __init__(
        self,
        origin: Scope,
        send: Send,
        method: str,
        metrics: HttpMetrics | None,
        span: Span | None,
    ) -> None:
        dict.__init__(self, origin)
        self._origin = origin
        self._send = send
        self.method = method
        self.metrics = metrics
        self.span = span
        self.prefix = ""
        self.route = UNMATCHED_ROUTE
        self.container = False
        self.selected: object = None
        self.named = False
        self.children: RouteMetrics | None = None
        self.status = 0
        self.size = 0

    def __setitem__(self, key: str, value: Any) -> None:
        dict.__setitem__(self, key, value)
        self._origin[key] = value
        if key == "route" and value is not self.selected:
            self._route_selected(value)

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        # FastAPI's router writes the route it picked with update(), Starlette's with [].
        if not isinstance(other, dict):
            other = dict(other)
        dict.update(self, other, **kwargs)
        self._origin.update(other, **kwargs)
        route = dict.get(self, "route")
        if route is not self.selected:
            self._route_selected(route)

    def _route_selected(self, route: object) -> None:
        # A mount (or host) sets itself first, then its own router sets the inner route; the
        # mount's path_format is "/api/{path}" and what it adds to its children is "/api".
        if self.container:
            self.prefix = self.route.removesuffix("/{path}")
        self.selected = route
        self.container = isinstance(route, Mount | Host)
        self.route = self.prefix + str(getattr(route, "path_format", ""))
        metrics = self.metrics
        if metrics is not None:
            if self.children is not None:
                self.children.leave()
            self.children = metrics.enter(self.method, self.route)

    async def send(self, message: Message) -> None:
        """Note the status and body size of what the app sends, then send it."""
        message_type = message["type"]
        if message_type == "http.response.body":
            self.size += len(message.get("body", b""))
        elif message_type == "http.response.start":
            self.status = message["status"]
        elif message_type == "websocket.accept":
            self.status = 101
        elif message_type == "websocket.close" and self.status == 0:
            self.status = 403  # closed before accepting: the server answers 403
        elif message_type == "websocket.http.response.start":
            self.status = message["status"]
        await self._send(message)


# FastAPI (0.16x) puts its request telemetry here when it opens a SERVER span of its own; None
# when it does not trace the request (telemetry off, or the path excluded).
_FASTAPI_TELEMETRY = "fastapi.telemetry"


class ObservabilityMiddleware:
    """Pure ASGI middleware that records Prometheus metrics and an OpenTelemetry server span.

    Metrics (HTTP requests and WebSocket sessions; WebSockets use the method ``WEBSOCKET``):

    - ``aegis_http_requests_total{method,route,status}``
    - ``aegis_http_request_duration_seconds{method,route}`` (histogram, ``buckets``)
    - ``aegis_http_requests_in_progress{method,route}`` (``livesum`` across workers)
    - ``aegis_http_response_size_bytes{method,route}`` (histogram, ``size_buckets``)

    ``route`` is the template the router matched (``/users/{user_id}``, mount prefixes
    included); a request answered before routing (a 401 from an auth middleware inside this
    one) gets the template of the route it was for; requests no route matches share
    :data:`UNMATCHED_ROUTE`. Unknown methods share
    ``_OTHER``. A request that raises before responding counts as status 500.

    Tracing: each request runs in a ``SERVER`` span named ``"{method} {route}"``, a child of the
    incoming W3C ``traceparent``, with the stable HTTP semantic-convention attributes; a 5xx or
    an exception sets the span's status to ERROR. The span is the current span while the app
    runs, so log processors and :func:`aegis.obs.inject` see its trace id. Without the
    OpenTelemetry SDK no span is created; an incoming ``traceparent`` is still made current,
    so outgoing calls continue the caller's trace. A request without one (and, with tracing
    on, an excluded path) runs with no trace current, never an earlier request's; the
    OpenTelemetry context is restored with its token when the request ends. Where FastAPI
    traces the request itself (FastAPI's own telemetry, on once a tracer provider is set), its
    SERVER span is the request's one span: no second one is opened, and it stays current.

    .. versionchanged:: 0.1
        ``exclude_paths`` takes :class:`~aegis.core.paths.PathMatcher` patterns, so
        ``"OPTIONS /api*"`` (one method) works as well.

    .. versionchanged:: 0.1
        Without ``tracer_provider``, the global provider is looked up once, at the first
        request: call :func:`aegis.obs.setup_tracing` before the server starts serving.

    Args:
        app: The ASGI app to wrap.
        registry: Where the metrics live; the default registry when ``None``.
        buckets: Upper bounds, in seconds, of the duration histogram.
        size_buckets: Upper bounds, in bytes, of the response size histogram.
        exclude_paths: Paths to leave alone, in the path language of :mod:`aegis.core.paths`
            (``/metrics``, ``/health*``, ``GET /docs*``).
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
        self._metrics = http_metrics(registry, buckets, size_buckets) if metrics else None
        self._tracing = tracing
        # Looking the global provider up costs a microsecond (an os.environ probe) on every
        # request; it is done once, at the first request, when the application has set it up.
        self._tracer_provider = tracer_provider
        self._tracer: trace.Tracer | None = None
        self._tracer_resolved = False
        self._excluded = PathMatcher(exclude_paths)

    def _resolve_tracer(self) -> trace.Tracer | None:
        provider = self._tracer_provider or trace.get_tracer_provider()
        if not isinstance(provider, ProxyTracerProvider | trace.NoOpTracerProvider):
            self._tracer = provider.get_tracer(_TRACER_NAME)
        self._tracer_resolved = True
        return self._tracer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one connection through the wrapped app, measuring it."""
        kind = scope["type"]
        if kind != "http" and kind != "websocket":  # noqa: PLR1714 (two compares beat a set)
            await self.app(scope, receive, send)
            return
        if self._excluded.matches(scope.get("method"), scope["path"]):
            await self._serve_excluded(scope, receive, send)
            return
        if kind == "http":
            method = scope["method"]
            if method not in _METHODS:
                method = _OTHER_METHOD
        else:
            method = _WEBSOCKET_METHOD
        started = time.perf_counter()
        span = token = None
        if self._tracing and scope.get(_FASTAPI_TELEMETRY) is None:
            tracer = self._tracer if self._tracer_resolved else self._resolve_tracer()
            if tracer is not None:
                span, token = _start_span(tracer, scope, method)
            else:
                token = _follow_caller(scope["headers"])
        exchange = _Exchange(scope, send, method, self._metrics, span)
        try:
            await self.app(exchange, receive, exchange.send)
        except BaseException as exc:
            self._finish(exchange, started, exc)
            raise
        else:
            self._finish(exchange, started, None)
        finally:
            if token is not None:
                otel_context.detach(token)

    async def _serve_excluded(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._tracing or scope.get(_FASTAPI_TELEMETRY) is not None:
            await self.app(scope, receive, send)
            return
        # No span here, but no earlier request's trace either (see _clear_trace_context).
        cleared = _clear_trace_context()
        try:
            await self.app(scope, receive, send)
        finally:
            if cleared is not None:
                otel_context.detach(cleared)

    def _finish(self, exchange: _Exchange, started: float, failure: BaseException | None) -> None:
        # No response started: the server answers 500 (after an exception or an app that
        # returned without responding).
        status = exchange.status or 500
        if exchange.selected is None:
            # Answered before the router recorded a route (a 401 from the auth middleware, a
            # 429, a Starlette Route inside a FastAPI router): label it with the route the
            # router would have picked, never <unmatched> for a route that exists.
            template = route_template(exchange)
            if template is not None:
                exchange.route = template
                exchange.named = True
        metrics = self._metrics
        if metrics is not None:
            children = exchange.children
            left = children is not None
            if children is None:
                children = metrics.route(exchange.method, exchange.route)
            size = exchange.size if exchange.method != _WEBSOCKET_METHOD else None
            children.finish(left, time.perf_counter() - started, size, status)
        span = exchange.span
        if span is not None:
            _end_span(span, exchange, status, failure)


def _follow_caller(headers: Sequence[tuple[bytes, bytes]]) -> Token[Context] | None:
    """No SDK: no span to record, but keep the caller's trace current for propagation."""
    for name, _ in headers:
        if name == b"traceparent":
            return otel_context.attach(propagate.extract(headers, Context(), _GETTER))
    # What _clear_trace_context() does, inline: this runs for every request.
    return otel_context.attach(Context()) if otel_context.get_current() else None


def _start_span(
    tracer: trace.Tracer, scope: Scope, method: str
) -> tuple[Span | None, Token[Context] | None]:
    headers = scope["headers"]
    # From an empty Context, never the current one: a propagator that starts from the current
    # context (W3C baggage does) would carry an earlier request's values into this one.
    parent = propagate.extract(headers, Context(), _GETTER)
    attributes: dict[str, str | int] = {
        "http.request.method": method if method != _WEBSOCKET_METHOD else "GET",
        "url.path": scope["path"],
        "url.scheme": scope.get("scheme", "http"),
        "network.protocol.version": scope.get("http_version", "1.1"),
    }
    client = scope.get("client")
    if client:
        attributes["client.address"] = client[0]
    span = tracer.start_span(method, context=parent, kind=SpanKind.SERVER, attributes=attributes)
    return span, otel_context.attach(trace.set_span_in_context(span, parent))


def _clear_trace_context() -> Token[Context] | None:
    """Make the empty context current unless it already is; the token to detach, if any.

    The server may start a request in a context that still holds an earlier request's span
    (uvicorn and keep-alive connections, see aegis.core.context): a request without a
    ``traceparent`` must not continue that trace. Checking first keeps the usual case (nothing
    current) free of an attach.
    """
    if otel_context.get_current():
        return otel_context.attach(Context())
    return None


def _end_span(span: Span, exchange: _Exchange, status: int, failure: BaseException | None) -> None:
    # Name and route are set once, at the end: each SDK call takes the span's lock.
    attributes: dict[str, str | int] = {"http.response.status_code": status}
    if exchange.selected is not None or exchange.named:
        span.update_name(f"{exchange.method} {exchange.route}")
        attributes["http.route"] = exchange.route
    if failure is not None:
        span.record_exception(failure)
        attributes["error.type"] = type(failure).__qualname__
        span.set_status(StatusCode.ERROR, f"{type(failure).__qualname__}: {failure}")
    elif status >= 500:  # semantic conventions: only 5xx fail a server span
        attributes["error.type"] = str(status)
        span.set_status(StatusCode.ERROR)
    span.set_attributes(attributes)
    span.end()


__all__ = [
    "DEFAULT_EXCLUDED_PATHS",
    "DEFAULT_SIZE_BUCKETS",
    "UNMATCHED_ROUTE",
    "ObservabilityMiddleware",
]

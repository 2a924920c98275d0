"""Outgoing httpx requests: a CLIENT span each, and its trace context in ``traceparent``.

The span follows the OpenTelemetry HTTP client semantic conventions (stable since 1.23): named
after the method, with ``http.request.method``, ``url.full`` (credentials and signature query
values redacted), ``server.address``, ``server.port``, ``http.response.status_code`` and
``error.type``. httpx is the optional extra ``aegis-obs[http]``: ``aegis.obs`` imports this
module on first use of :func:`instrument_httpx`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final, TypeVar
from urllib.parse import parse_qsl, urlencode

import httpx
from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, StatusCode, TracerProvider

from aegis.obs._asgi import _METHODS, _OTHER_METHOD, _TRACER_NAME

_Client = TypeVar("_Client", httpx.Client, httpx.AsyncClient)

_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
_REDACTED: Final = "REDACTED"
# Query parameters whose values the semantic conventions say to redact by default: they are
# request signatures that grant access on their own.
_SENSITIVE_QUERY: Final = frozenset({"AWSAccessKeyId", "Signature", "sig", "X-Goog-Signature"})
_CLIENT_ERROR: Final = 400


def _full_url(url: httpx.URL) -> str:
    # url.full without secrets, as the semantic conventions say: user name and password
    # become REDACTED, and so do the values of the query parameters that are request
    # signatures; the fragment is dropped.
    changes: dict[str, str | bytes | None] = {"fragment": None}
    if url.userinfo:
        changes["userinfo"] = f"{_REDACTED}:{_REDACTED}".encode("ascii")
    if url.query:
        pairs = parse_qsl(url.query.decode("ascii"), keep_blank_values=True)
        if any(name in _SENSITIVE_QUERY for name, _ in pairs):
            redacted = [(n, _REDACTED if n in _SENSITIVE_QUERY else v) for n, v in pairs]
            changes["query"] = urlencode(redacted).encode("ascii")
    return str(url.copy_with(**changes))


@contextmanager
def _client_span(tracer: trace.Tracer, request: httpx.Request) -> Iterator[_Outcome]:
    method = request.method
    attributes: dict[str, str | int] = {
        "http.request.method": method if method in _METHODS else _OTHER_METHOD,
        "url.full": _full_url(request.url),
        "server.address": request.url.host,
    }
    if method not in _METHODS:
        attributes["http.request.method_original"] = method
    port = request.url.port or _DEFAULT_PORTS.get(request.url.scheme)
    if port is not None:
        attributes["server.port"] = port
    name = method if method in _METHODS else "HTTP"
    span = tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attributes)
    # The server's span becomes a child of this one. Without the SDK the span is the current
    # (non-recording) one, so the caller's own trace context goes out unchanged.
    propagate.inject(request.headers, context=trace.set_span_in_context(span))
    outcome = _Outcome(span)
    try:
        yield outcome
    except BaseException as exc:
        span.record_exception(exc)
        span.set_attribute("error.type", type(exc).__qualname__)
        span.set_status(StatusCode.ERROR, f"{type(exc).__qualname__}: {exc}")
        raise
    finally:
        span.end()


class _Outcome:
    """Records the response of a client span."""

    __slots__ = ("_span",)

    def __init__(self, span: Span) -> None:
        self._span = span

    def received(self, response: httpx.Response) -> None:
        status = response.status_code
        attributes: dict[str, str | int] = {"http.response.status_code": status}
        version = response.http_version.removeprefix("HTTP/")
        if version:
            attributes["network.protocol.version"] = version
        if status >= _CLIENT_ERROR:
            # Client spans: a 4xx is the caller's failure too (unlike server spans).
            attributes["error.type"] = str(status)
            self._span.set_status(StatusCode.ERROR)
        self._span.set_attributes(attributes)


def instrument_httpx(client: _Client, *, tracer_provider: TracerProvider | None = None) -> _Client:
    """Make every request of ``client`` a CLIENT span that carries its trace (``traceparent``).

    Each request sent by the client (each redirect hop and retry too) gets a span named after
    its method, a child of the current span, with the HTTP client attributes of the
    OpenTelemetry semantic conventions. The request carries the span's context in
    ``traceparent``/``tracestate``, so the server's span is its child. A response of 400 or
    more, or an exception (connection refused, timeout), sets the span's status to ERROR and
    ``error.type``. Without the OpenTelemetry SDK no span is recorded and the current trace
    context is sent as it is. Works for ``httpx.Client`` and ``httpx.AsyncClient``, on the
    client's transport and each of its mounts; instrumenting a client twice changes nothing.

    .. versionchanged:: 0.1
        Creates a CLIENT span per request; it used to inject the current context only.

    Args:
        client: The client to instrument.
        tracer_provider: The provider of the spans; the global one when ``None``.

    Returns:
        ``client`` itself.

    Example:
        >>> client = instrument_httpx(httpx.AsyncClient(base_url="http://user-service"))
    """
    tracer = trace.get_tracer(_TRACER_NAME, tracer_provider=tracer_provider)
    # httpx has no public hook around sending that also sees failures (event hooks miss
    # exceptions), so the client's transports are wrapped, as OpenTelemetry's own httpx
    # instrumentation does: _transport and _mounts are where httpx looks a transport up.
    if isinstance(client, httpx.AsyncClient):

        def wrap_async(transport: httpx.AsyncBaseTransport) -> httpx.AsyncBaseTransport:
            if isinstance(transport, _TracedAsyncTransport):
                return transport
            return _TracedAsyncTransport(transport, tracer)

        client._transport = wrap_async(client._transport)
        client._mounts = {
            pattern: None if transport is None else wrap_async(transport)
            for pattern, transport in client._mounts.items()
        }
    else:

        def wrap(transport: httpx.BaseTransport) -> httpx.BaseTransport:
            if isinstance(transport, _TracedTransport):
                return transport
            return _TracedTransport(transport, tracer)

        client._transport = wrap(client._transport)
        client._mounts = {
            pattern: None if transport is None else wrap(transport)
            for pattern, transport in client._mounts.items()
        }
    return client


class _TracedTransport(httpx.BaseTransport):
    """Sends each request in a CLIENT span."""

    def __init__(self, transport: httpx.BaseTransport, tracer: trace.Tracer) -> None:
        self.transport = transport
        self.tracer = tracer

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with _client_span(self.tracer, request) as outcome:
            response = self.transport.handle_request(request)
            outcome.received(response)
            return response

    def close(self) -> None:
        self.transport.close()


class _TracedAsyncTransport(httpx.AsyncBaseTransport):
    """Sends each request in a CLIENT span, asynchronously."""

    def __init__(self, transport: httpx.AsyncBaseTransport, tracer: trace.Tracer) -> None:
        self.transport = transport
        self.tracer = tracer

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        with _client_span(self.tracer, request) as outcome:
            response = await self.transport.handle_async_request(request)
            outcome.received(response)
            return response

    async def aclose(self) -> None:
        await self.transport.aclose()


__all__ = ["instrument_httpx"]

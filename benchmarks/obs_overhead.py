"""What aegis.obs adds to a Starlette request, against bare Starlette and two peer stacks.

One run measures, side by side, a hello-world route (``GET /items/{item_id}``) on:

- ``bare``: Starlette alone;
- ``aegis``: + a request-context middleware (X-Request-ID into ``aegis.core.context``) +
  ``ObservabilityMiddleware`` (metrics and tracing through the OpenTelemetry API, no SDK);
- ``pfi``: + asgi-correlation-id + prometheus-fastapi-instrumentator;
- ``exporter``: + asgi-correlation-id + starlette-exporter;
- ``aegis-sdk``: ``aegis`` with an OpenTelemetry SDK tracer provider (no exporter);
- ``otel-sdk``: + OpenTelemetry's own ASGI middleware with the same SDK provider.

In-process (default): the raw ASGI call ``app(scope, receive, send)`` in a loop, CPU time
(``process_time``), best of several interleaved rounds, so only the middleware is measured.
With ``--uvicorn``: each app under uvicorn (httptools, one worker), driven by keep-alive
connections from this process; the server's own CPU time per request comes from psutil.

The request-context middleware here stands in for aegis-log's (built separately, and aegis-obs
must not depend on it): it does what asgi-correlation-id does, so both sides do the same work.

Usage: .venv/bin/python benchmarks/obs_overhead.py [--calls 20000] [--rounds 5] [--uvicorn]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
from _results import Results, add_json_argument, figure
from asgi_correlation_id import CorrelationIdMiddleware
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry
from prometheus_fastapi_instrumentator import Instrumentator
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette_exporter import PrometheusMiddleware

from aegis.core.context import request_id
from aegis.obs import ObservabilityMiddleware

STACKS = ["bare", "aegis", "pfi", "exporter", "aegis-sdk", "otel-sdk"]


class RequestContextMiddleware:
    """Pure ASGI: take X-Request-ID (or make one), hold it in context, echo it back."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one request with its id in context."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        value = None
        for name, header in scope["headers"]:
            if name == b"x-request-id":
                value = header.decode("latin-1")
        value = value or uuid.uuid4().hex
        encoded = value.encode("latin-1")

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", []).append((b"x-request-id", encoded))
            await send(message)

        token = request_id.set(value)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id.reset(token)


async def item(request: Request) -> Response:
    """The hello-world endpoint."""
    return PlainTextResponse("hello")


def make_app(stack: str) -> Starlette:
    """The hello-world app with the middleware of ``stack``."""
    routes = [Route("/items/{item_id}", item)]
    sdk = TracerProvider()
    middleware = {
        "bare": [],
        "aegis": [
            Middleware(RequestContextMiddleware),
            Middleware(ObservabilityMiddleware, registry=CollectorRegistry()),
        ],
        "aegis-sdk": [
            Middleware(RequestContextMiddleware),
            Middleware(ObservabilityMiddleware, registry=CollectorRegistry(), tracer_provider=sdk),
        ],
        "otel-sdk": [Middleware(OpenTelemetryMiddleware, tracer_provider=sdk)],
        "pfi": [Middleware(CorrelationIdMiddleware)],
        "exporter": [Middleware(CorrelationIdMiddleware), Middleware(PrometheusMiddleware)],
    }[stack]
    app = Starlette(routes=routes, middleware=middleware)
    if stack == "pfi":
        Instrumentator(registry=CollectorRegistry()).instrument(app)
    return app


def app_from_env() -> Starlette:
    """Build the app named by OBS_BENCH_STACK (the uvicorn factory)."""
    return make_app(os.environ["OBS_BENCH_STACK"])


SCOPE: Scope = {
    "type": "http",
    "asgi": {"version": "3.0"},
    "http_version": "1.1",
    "method": "GET",
    "scheme": "http",
    "path": "/items/42",
    "raw_path": b"/items/42",
    "root_path": "",
    "query_string": b"",
    "headers": [(b"host", b"bench"), (b"user-agent", b"bench"), (b"accept", b"*/*")],
    "client": ("127.0.0.1", 50000),
    "server": ("127.0.0.1", 8000),
}


async def drive(app: ASGIApp, calls: int) -> float:
    """CPU seconds for ``calls`` raw ASGI requests."""
    request: Message = {"type": "http.request", "body": b"", "more_body": False}

    async def receive() -> Message:
        return request

    async def send(message: Message) -> None:
        return None

    started = time.process_time()
    for _ in range(calls):
        await app(dict(SCOPE), receive, send)
    return time.process_time() - started


def report(per_call: dict[str, float], unit: str) -> None:
    """Print µs per request, throughput ratio and added µs, each against bare Starlette."""
    bare = per_call["bare"]
    print(f"{'stack':<10} {unit + ' us/req':>14} {'vs bare':>8} {'added us':>9}")
    for stack, seconds in per_call.items():
        added = (seconds - bare) * 1e6
        print(f"{stack:<10} {seconds * 1e6:>14.1f} {bare / seconds:>7.2f}x {added:>9.1f}")
    print(
        f"aegis-sdk adds {(per_call['aegis-sdk'] - bare) * 1e6:.1f} us vs "
        f"otel-sdk {(per_call['otel-sdk'] - bare) * 1e6:.1f} us "
        f"({(per_call['aegis-sdk'] - bare) / (per_call['otel-sdk'] - bare):.2f} of it)"
    )


def in_process(calls: int, rounds: int) -> dict[str, float]:
    """Interleaved rounds of raw ASGI calls; best round per stack (CPU seconds per call)."""
    apps = {stack: make_app(stack) for stack in STACKS}
    best = dict.fromkeys(STACKS, float("inf"))
    loop = asyncio.new_event_loop()
    for app in apps.values():
        loop.run_until_complete(drive(app, 200))  # build middleware stacks, warm caches
    for _ in range(rounds):
        for stack, app in apps.items():
            best[stack] = min(best[stack], loop.run_until_complete(drive(app, calls)) / calls)
    loop.close()
    print(f"in-process ASGI, {calls} calls x {rounds} rounds, best round, CPU time")
    report(best, "CPU")
    return best


def free_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def load(port: int, connections: int, seconds: float) -> int:
    """Keep-alive GETs on ``connections`` sockets for ``seconds``; the responses counted."""
    request = b"GET /items/42 HTTP/1.1\r\nHost: bench\r\n\r\n"
    deadline = time.monotonic() + seconds
    done = 0

    async def one() -> None:
        nonlocal done
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while time.monotonic() < deadline:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length")
            )
            await reader.readexactly(length)
            done += 1
        writer.close()
        await writer.wait_closed()

    await asyncio.gather(*(one() for _ in range(connections)))
    return done


def wait_until_listening(port: int, server: subprocess.Popen[bytes]) -> None:
    """Return once uvicorn accepts connections; raise if it exits or takes too long."""
    for _ in range(200):  # bounded: at most ~10 s for uvicorn to start
        if server.poll() is not None:
            raise RuntimeError("uvicorn exited")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.05).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("uvicorn did not start")


def under_uvicorn(seconds: float, rounds: int, connections: int) -> dict[str, float]:
    """Each stack under uvicorn; server CPU per request and requests per second (returned)."""
    cpu: dict[str, list[float]] = {stack: [] for stack in STACKS}
    rate: dict[str, list[float]] = {stack: [] for stack in STACKS}
    for _ in range(rounds):
        for stack in STACKS:
            port = free_port()
            server = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "obs_overhead:app_from_env", "--factory",
                 "--port", str(port), "--http", "httptools", "--no-access-log",
                 "--log-level", "warning", "--app-dir", str(Path(__file__).parent)],
                env={**os.environ, "OBS_BENCH_STACK": stack},
            )  # fmt: skip
            try:
                wait_until_listening(port, server)
                asyncio.run(load(port, connections, 0.5))  # warm up
                process = psutil.Process(server.pid)
                before = process.cpu_times()
                served = asyncio.run(load(port, connections, seconds))
                after = process.cpu_times()
            finally:
                server.terminate()
                server.wait(timeout=10)
            used = (after.user - before.user) + (after.system - before.system)
            cpu[stack].append(used / served)
            rate[stack].append(served / seconds)
    print(f"uvicorn, {connections} keep-alive connections, {seconds:g} s x {rounds} rounds")
    report({stack: statistics.median(values) for stack, values in cpu.items()}, "server CPU")
    bare_rate = statistics.median(rate["bare"])
    for stack, values in rate.items():
        median = statistics.median(values)
        print(f"{stack:<10} {median:>10.0f} req/s {median / bare_rate:>6.2f}x")
    return {stack: statistics.median(values) for stack, values in rate.items()}


def record(results: Results, title: str, unit: str, figures: dict[str, float]) -> None:
    """Record the aegis stacks against bare Starlette and the peer stacks."""
    higher = unit == "req/s"
    results.case(
        f"{title}: request context + metrics + tracing API",
        unit,
        aegis=figure("aegis", figures["aegis"]),
        raw=figure("bare Starlette", figures["bare"]),
        peers=[
            figure("asgi-correlation-id + instrumentator", figures["pfi"]),
            figure("asgi-correlation-id + starlette-exporter", figures["exporter"]),
        ],
        higher_is_better=higher,
    )
    results.case(
        f"{title}: with the OpenTelemetry SDK",
        unit,
        aegis=figure("aegis + SDK", figures["aegis-sdk"]),
        raw=figure("bare Starlette", figures["bare"]),
        peers=[figure("OpenTelemetry ASGI middleware + SDK", figures["otel-sdk"])],
        higher_is_better=higher,
    )


def main() -> None:
    """Parse the arguments and run the chosen measurements."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--uvicorn", action="store_true", help="also measure under uvicorn")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=16)
    add_json_argument(parser)
    args = parser.parse_args()
    results = Results(
        "aegis-obs",
        "obs_overhead",
        ["starlette", "opentelemetry-sdk", "prometheus-fastapi-instrumentator",
         "starlette-exporter", "asgi-correlation-id", "uvicorn"],
    )  # fmt: skip
    cpu = in_process(args.calls, args.rounds)
    record(results, "in-process", "CPU µs/req", {k: v * 1e6 for k, v in cpu.items()})
    if args.uvicorn:
        record(
            results, "uvicorn", "req/s", under_uvicorn(args.seconds, args.rounds, args.connections)
        )
    results.write(args.json)


if __name__ == "__main__":
    main()

"""What aegis.obs adds to a Starlette request, against bare Starlette and two peer stacks.

One run measures, side by side, a hello-world route (``GET /items/{item_id}``) on:

- ``bare``: Starlette alone;
- ``obs``: + ``ObservabilityMiddleware`` alone (metrics and tracing through the OpenTelemetry
  API, no SDK): what aegis.obs itself costs;
- ``aegis``: + a request-context middleware (X-Request-ID into ``aegis.core.context``) +
  ``ObservabilityMiddleware``: the stack the issue's goal is about;
- ``pfi``: + asgi-correlation-id + prometheus-fastapi-instrumentator;
- ``exporter``: + asgi-correlation-id + starlette-exporter;
- ``aegis-sdk``: ``aegis`` with an OpenTelemetry SDK tracer provider (no exporter);
- ``otel-sdk``: + OpenTelemetry's own ASGI middleware with the same SDK provider;
- ``service``: the whole stack aegis-service's ``bootstrap()`` installs: request metrics and
  span (aegis-obs), request id, context and one JSON access line to /dev/null (aegis-log),
  the unhandled-error answer (aegis-core) and the bearer token check (aegis-auth, HS256, a
  token seen before: every request sends the same one);
- ``service-no-auth``: ``service`` without the bearer check: metrics, request id, access line
  and the error answer, the configuration of issue 25's capacity goal;
- ``service-no-access`` (in-process only): ``service`` with the request path in the logging
  middleware's ``skip_paths`` (request id and context as before, no access line; metrics and
  span untouched): ``service`` minus this is what the access line costs;
- ``layer-*`` (in-process only): each middleware of ``service`` alone on bare Starlette, set up
  as ``bootstrap()`` sets it up: what each one adds.

In-process (default): the raw ASGI call ``app(scope, receive, send)`` in a loop, CPU time
(``process_time``), best of several interleaved rounds, so only the middleware is measured.
With ``--uvicorn``: each app under uvicorn (httptools, one worker), driven by keep-alive
connections from this process; the server's own CPU time per request comes from psutil.

Read the uvicorn figures with the machine in mind. Requests per second from a closed-loop
client measure the server only while the server is the bottleneck, i.e. busy close to one core.
On a small shared machine it is not: the load generator (Python, on the same 2 cores) and
other processes take their turns, the server sits at a fraction of a core and req/s swings by
tens of percent between identical runs. So each stack is also reported as server *capacity*:
requests per second of the server's own CPU time (1 / CPU per request), the rate it would reach
with one core to itself, together with the share of a core it actually got. The load generator
is a plain asyncio protocol (on uvloop when installed) so that it costs the machine as little
as possible; it counts a response when its whole body has arrived.

In-process and under uvicorn the same middleware costs differ by a factor of about 2.5: the
in-process loop repeats one request with everything hot in the CPU caches, while a server
request runs after the kernel's TCP work, the event loop and the HTTP parser have evicted
them; bare Starlette's own 8 us become about 16 us the same way. Compare in-process figures
with in-process bare (8 us), not with bare under uvicorn.

The request-context middleware here stands in for aegis-log's (built separately, and aegis-obs
must not depend on it): it does what asgi-correlation-id does, so both sides do the same work.

Usage: .venv/bin/python benchmarks/obs_overhead.py [--calls 20000] [--rounds 5] [--uvicorn]
       .venv/bin/python benchmarks/obs_overhead.py --instructions bare,aegis,service --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from functools import partial
from pathlib import Path
from typing import cast

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

STACKS = [
    "bare", "obs", "aegis", "pfi", "exporter", "aegis-sdk", "otel-sdk", "service",
    "service-no-auth",
]  # fmt: skip
# Each middleware of the bootstrap() stack alone on bare Starlette: where its cost comes from.
LAYERS = {
    "layer-obs": "metrics and span (aegis-obs)",
    "layer-request-id": "request id and context, no access line (aegis-log)",
    "layer-access": "request id, context and access line (aegis-log)",
    "layer-error": "unhandled-error answer (aegis-core)",
    "layer-auth": "bearer check, cached (aegis-auth)",
}
IN_PROCESS_STACKS = [*STACKS, "service-no-access", *LAYERS]
# The bearer token every request sends (the service stack checks it; the others ignore it).
_ISSUER, _AUDIENCE, _SECRET = "bench-issuer", "bench", "a bench secret of at least 32 bytes!"


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


def bench_token() -> str:
    """A valid access token for the ``service`` stack's settings."""
    from aegis.auth import JWTKey, KeySet, TokenService

    keys = KeySet([JWTKey.hmac("bench", _SECRET, "HS256")])
    return TokenService(keys, issuer=_ISSUER, audience=_AUDIENCE).issue_access_token("user-1")


def service_app(*, access_line: bool = True, auth: bool = True) -> Starlette:
    """The hello-world app through aegis-service's bootstrap(): log + obs + error (+ auth)."""
    from aegis.log import LogSettings, RequestLoggingMiddleware, StreamOutput
    from aegis.service import AuthSettings, ServiceSettings, bootstrap

    app = Starlette(routes=[Route("/items/{item_id}", item)])
    settings = ServiceSettings(
        name="bench",
        log=LogSettings(console=None),
        auth=AuthSettings(
            issuer=_ISSUER, audience=_AUDIENCE, algorithm="HS256", signing_key=_SECRET,
            key_id="bench",
        ) if auth else None,
    )  # fmt: skip
    sink = Path(os.devnull).open("wb")  # noqa: SIM115 - open for the process's life
    bootstrap(app, settings, registry=CollectorRegistry(), log_outputs=[StreamOutput(sink)])
    if not access_line:
        for middleware in app.user_middleware:  # not built yet: its options can still change
            if middleware.cls is cast("object", RequestLoggingMiddleware):
                skipped = [*cast("list[str]", middleware.kwargs["skip_paths"]), "/items*"]
                middleware.kwargs["skip_paths"] = skipped
    return app


def layer_app(stack: str) -> Starlette:
    """Bare Starlette with one middleware of the bootstrap() stack, set up as bootstrap() does."""
    from aegis.auth import AuthMiddleware, JWTKey, KeySet, TokenService
    from aegis.core.web import UnhandledErrorMiddleware
    from aegis.log import LogSettings, RequestLoggingMiddleware, StreamOutput, configure_logging

    sink = Path(os.devnull).open("wb")  # noqa: SIM115 - open for the process's life
    configure_logging(LogSettings(console=None, service_name="bench"), outputs=[StreamOutput(sink)])
    keys = KeySet([JWTKey.hmac("bench", _SECRET, "HS256")])
    middleware = {
        "layer-obs": Middleware(ObservabilityMiddleware, registry=CollectorRegistry()),
        "layer-request-id": Middleware(
            RequestLoggingMiddleware, service_name="bench", skip_paths=["/items*"]
        ),
        "layer-access": Middleware(RequestLoggingMiddleware, service_name="bench"),
        "layer-error": Middleware(UnhandledErrorMiddleware),
        "layer-auth": Middleware(
            AuthMiddleware, tokens=TokenService(keys, issuer=_ISSUER, audience=_AUDIENCE)
        ),
    }[stack]
    return Starlette(routes=[Route("/items/{item_id}", item)], middleware=[middleware])


def make_app(stack: str) -> Starlette:
    """The hello-world app with the middleware of ``stack``."""
    if stack.startswith("service"):
        return service_app(
            access_line=stack != "service-no-access", auth=stack != "service-no-auth"
        )
    if stack.startswith("layer-"):
        return layer_app(stack)
    routes = [Route("/items/{item_id}", item)]
    sdk = TracerProvider()
    middleware = {
        "bare": [],
        "obs": [Middleware(ObservabilityMiddleware, registry=CollectorRegistry())],
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
    "headers": [
        (b"host", b"bench"),
        (b"user-agent", b"bench"),
        (b"accept", b"*/*"),
        (b"authorization", f"Bearer {bench_token()}".encode()),
    ],
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
    print(f"{'stack':<18} {unit + ' us/req':>14} {'vs bare':>8} {'added us':>9}")
    for stack, seconds in per_call.items():
        added = (seconds - bare) * 1e6
        print(f"{stack:<18} {seconds * 1e6:>14.1f} {bare / seconds:>7.2f}x {added:>9.1f}")
    print(
        f"aegis-sdk adds {(per_call['aegis-sdk'] - bare) * 1e6:.1f} us vs "
        f"otel-sdk {(per_call['otel-sdk'] - bare) * 1e6:.1f} us "
        f"({(per_call['aegis-sdk'] - bare) / (per_call['otel-sdk'] - bare):.2f} of it)"
    )
    if "service-no-access" in per_call:
        line = (per_call["service"] - per_call["service-no-access"]) * 1e6
        print(f"the access line (service - service-no-access): {line:.1f} us")


def in_process(calls: int, rounds: int) -> dict[str, float]:
    """Interleaved rounds of raw ASGI calls; best round per stack (CPU seconds per call)."""
    apps = {stack: make_app(stack) for stack in IN_PROCESS_STACKS}
    best = dict.fromkeys(IN_PROCESS_STACKS, float("inf"))
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


class _KeepAlive(asyncio.Protocol):
    """One keep-alive connection: sends the next GET as soon as a whole response arrived."""

    request = (
        b"GET /items/42 HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer "
        + bench_token().encode()
        + b"\r\n\r\n"
    )

    def __init__(self, deadline: float, closed: asyncio.Future[int]) -> None:
        self.deadline = deadline
        self.closed = closed
        self.buffer = b""
        self.done = 0
        self.transport = asyncio.WriteTransport()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.WriteTransport", transport)
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                break
            start = buffer.find(b"content-length: ", 0, end) + len(b"content-length: ")
            length = int(buffer[start : buffer.index(b"\r\n", start)])
            if len(buffer) < end + 4 + length:
                break
            buffer = buffer[end + 4 + length :]
            self.done += 1
            if time.monotonic() < self.deadline:
                self.transport.write(self.request)
            else:
                self.transport.close()
        self.buffer = buffer

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(self.done)


async def load(port: int, connections: int, seconds: float) -> int:
    """Keep-alive GETs on ``connections`` sockets for ``seconds``; the responses counted."""
    loop = asyncio.get_running_loop()
    deadline = time.monotonic() + seconds
    closed = [loop.create_future() for _ in range(connections)]
    for future in closed:
        await loop.create_connection(partial(_KeepAlive, deadline, future), "127.0.0.1", port)
    return sum(await asyncio.gather(*closed))


def run_load(port: int, connections: int, seconds: float) -> int:
    """:func:`load` on uvloop when it is installed (as uvicorn's own loop), else asyncio's."""
    try:
        import uvloop  # optional: a faster load generator when present
    except ImportError:
        return asyncio.run(load(port, connections, seconds))
    return uvloop.run(load(port, connections, seconds))


def wait_until_listening(
    port: int, server: subprocess.Popen[bytes], *, attempts: int = 200
) -> None:
    """Return once uvicorn accepts connections; raise if it exits or takes too long."""
    for _ in range(attempts):  # bounded: 200 is at most ~10 s for uvicorn to start
        if server.poll() is not None:
            raise RuntimeError("uvicorn exited")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.05).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("uvicorn did not start")


def under_uvicorn(
    seconds: float, rounds: int, connections: int
) -> tuple[dict[str, float], dict[str, float]]:
    """Each stack under uvicorn; returns median req/s and median server capacity per stack."""
    cpu: dict[str, list[float]] = {stack: [] for stack in STACKS}
    rate: dict[str, list[float]] = {stack: [] for stack in STACKS}
    busy: dict[str, list[float]] = {stack: [] for stack in STACKS}
    client: list[float] = []
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
                run_load(port, connections, 0.5)  # warm up
                process = psutil.Process(server.pid)
                before, wall, own = process.cpu_times(), time.monotonic(), time.process_time()
                served = run_load(port, connections, seconds)
                after, wall, own = (
                    process.cpu_times(),
                    time.monotonic() - wall,
                    time.process_time() - own,
                )
            finally:
                server.terminate()
                server.wait(timeout=10)
            used = (after.user - before.user) + (after.system - before.system)
            cpu[stack].append(used / served)
            rate[stack].append(served / wall)
            busy[stack].append(used / wall)
            client.append(own / served)
    print(
        f"uvicorn, {connections} keep-alive connections, {seconds:g} s x {rounds} rounds "
        f"(load generator: {statistics.median(client) * 1e6:.1f} us CPU per request)"
    )
    report({stack: statistics.median(values) for stack, values in cpu.items()}, "server CPU")
    bare_rate = statistics.median(rate["bare"])
    bare_cpu = statistics.median(cpu["bare"])
    head = ("stack", "req/s", "vs bare", "server busy", "capacity", "vs bare")
    print("{:<18} {:>8} {:>8} {:>12} {:>9} {:>8}".format(*head))
    for stack in STACKS:
        median, stack_cpu = statistics.median(rate[stack]), statistics.median(cpu[stack])
        print(
            f"{stack:<18} {median:>8.0f} {median / bare_rate:>7.2f}x "
            f"{statistics.median(busy[stack]):>9.2f} cpu {1 / stack_cpu:>9.0f} "
            f"{bare_cpu / stack_cpu:>7.2f}x"
        )
    return (
        {stack: statistics.median(values) for stack, values in rate.items()},
        {stack: 1 / statistics.median(values) for stack, values in cpu.items()},
    )


def instructions_under_uvicorn(stacks: list[str], seconds: float, connections: int) -> None:
    """Instructions per request of each stack's uvicorn server, counted by callgrind.

    A profile, not a benchmark: an instruction count does not move with the machine's other
    load (CPU time does), so it tells where a capacity ratio comes from. The server runs under
    ``valgrind --tool=callgrind``; the counters are zeroed after a warm-up and dumped after
    ``seconds`` of keep-alive load (valgrind runs it about fifty times slower).
    """
    print(f"uvicorn under callgrind, {connections} keep-alive connections, {seconds:g} s each")
    per_request: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as folder:
        for stack in stacks:
            port = free_port()
            output = Path(folder) / f"{stack}.out"
            server = subprocess.Popen(
                ["valgrind", "--tool=callgrind", f"--callgrind-out-file={output}",
                 sys.executable, "-m", "uvicorn", "obs_overhead:app_from_env", "--factory",
                 "--port", str(port), "--http", "httptools", "--no-access-log",
                 "--log-level", "warning", "--app-dir", str(Path(__file__).parent)],
                env={**os.environ, "OBS_BENCH_STACK": stack}, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            try:
                wait_until_listening(port, server, attempts=6000)  # valgrind starts slowly
                run_load(port, connections, 3)  # warm up
                subprocess.run(
                    ["callgrind_control", "-z", str(server.pid)], check=True, capture_output=True
                )
                served = run_load(port, connections, seconds)
                subprocess.run(
                    ["callgrind_control", "-d", str(server.pid)], check=True, capture_output=True
                )
            finally:
                server.terminate()
                server.wait(timeout=120)
            dump = next(Path(folder).glob(f"{stack}.out.*"))
            totals = [line for line in dump.read_text().splitlines() if line.startswith("totals:")]
            per_request[stack] = int(totals[0].split()[1]) / served
            added = per_request[stack] - per_request[stacks[0]]
            print(
                f"{stack:<18} {per_request[stack] / 1000:>8.1f}k instructions/req "
                f"(+{added / 1000:.1f}k, {per_request[stacks[0]] / per_request[stack]:.2f}x "
                f"{stacks[0]})",
                flush=True,
            )


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
    results.case(
        f"{title}: bootstrap() stack (log + obs + error + auth)",
        unit,
        aegis=figure("aegis-service bootstrap()", figures["service"]),
        raw=figure("bare Starlette", figures["bare"]),
        higher_is_better=higher,
        goal="<= 20 µs above bare" if title == "in-process" else None,
    )
    # Issue 25's capacity goal names metrics, request id and access logging: bootstrap()
    # without auth (its error answer stays: bootstrap() always installs it).
    results.case(
        f"{title}: bootstrap() stack without auth (log + obs + error)",
        unit,
        aegis=figure("aegis-service bootstrap(), no auth", figures["service-no-auth"]),
        raw=figure("bare Starlette", figures["bare"]),
        higher_is_better=higher,
        goal=">= 0.75x bare" if title == "uvicorn server capacity" else None,
    )


def record_service(results: Results, cpu_us: dict[str, float]) -> None:
    """The bootstrap() stack's CPU above bare Starlette, and what its access line costs."""
    bare = cpu_us["bare"]
    line = cpu_us["service"] - cpu_us["service-no-access"]
    results.case(
        "in-process: the access line of bootstrap()'s stack (aegis-log)",
        "CPU µs/req",
        aegis=figure("with the line - without", line),
        higher_is_better=False,
        goal="half its cost before issue 25",
    )
    results.table(
        "bootstrap() stack in-process: CPU added to bare Starlette per request",
        ["stack", "CPU µs/req", "added µs", "goal"],
        [
            ["bare Starlette", f"{bare:.1f}", "-", ""],
            ["bootstrap(): log + obs + error + auth", f"{cpu_us['service']:.1f}",
             f"{cpu_us['service'] - bare:.1f}", "<= 20"],
            ["the same without the access line (its path skipped)",
             f"{cpu_us['service-no-access']:.1f}",
             f"{cpu_us['service-no-access'] - bare:.1f}", ""],
            ["the access line", "-", f"{line:.1f}", "half its cost before"],
        ],
    )  # fmt: skip
    results.table(
        "Each middleware of bootstrap()'s stack alone on bare Starlette: CPU added per request",
        ["middleware", "added µs"],
        [[what, f"{cpu_us[stack] - bare:.1f}"] for stack, what in LAYERS.items()],
    )


def main() -> None:
    """Parse the arguments and run the chosen measurements."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--uvicorn", action="store_true", help="also measure under uvicorn")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument(
        "--instructions",
        metavar="STACK,STACK",
        help="only count the instructions per request of these stacks' uvicorn servers "
        "(callgrind; the first is the reference), e.g. bare,aegis,service-no-auth,service",
    )
    add_json_argument(parser)
    args = parser.parse_args()
    if args.instructions:
        instructions_under_uvicorn(args.instructions.split(","), args.seconds, args.connections)
        return
    results = Results(
        "aegis-obs",
        "obs_overhead",
        ["starlette", "opentelemetry-sdk", "prometheus-fastapi-instrumentator",
         "starlette-exporter", "asgi-correlation-id", "uvicorn"],
    )  # fmt: skip
    cpu = in_process(args.calls, args.rounds)
    cpu_us = {k: v * 1e6 for k, v in cpu.items()}
    record(results, "in-process", "CPU µs/req", cpu_us)
    record_service(results, cpu_us)
    if args.uvicorn:
        rate, capacity = under_uvicorn(args.seconds, args.rounds, args.connections)
        record(results, "uvicorn", "req/s", rate)
        record(results, "uvicorn server capacity", "req/s", capacity)
    results.write(args.json)


if __name__ == "__main__":
    main()

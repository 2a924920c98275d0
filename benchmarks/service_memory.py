"""Memory and CPU of a Starlette service with every aegis middleware, and where its time goes.

Three stacks serve the same ``GET /users/{user_id}`` (a small JSON body) with a valid EdDSA
bearer token on every request, called in-process (``app(scope, receive, send)``):

- ``bare``: Starlette alone (the token is sent but not checked);
- ``aegis``: the stack aegis-service's ``bootstrap()`` installs: ``ObservabilityMiddleware``
  (metrics + tracing API), ``RequestLoggingMiddleware`` (request id, context, one JSON access
  line to /dev/null), ``UnhandledErrorMiddleware`` and ``AuthMiddleware``;
- ``peers``: asgi-correlation-id + starlette-exporter + a hand-written PyJWT bearer check
  with the same claim checks, and a stdlib JSON access line (python-json-logger) to /dev/null.

Each stack runs in a fresh interpreter that imports only what it needs and reports: CPU µs per
request (best of ``--rounds``), peak RSS (``ru_maxrss``) after ``--requests`` requests, peak
bytes allocated while one request runs (tracemalloc, median), and the bytes still held per
request after ``--requests`` more (growth: ~0 means no leak). Then a cProfile of the aegis
stack gives the "bottlenecks": the share of time per component and the hottest functions.
With ``--soak N``, the aegis stack also serves N requests (1,000,000 for the full soak) in a
fresh interpreter, without tracemalloc, and reports its RSS after the first tenth and at the
end: the growth per request must stay ~0.

Usage: .venv/bin/python benchmarks/service_memory.py [--requests 5000] [--rounds 3]
       [--soak 1000000] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import logging
import os
import pstats
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from _results import Results, add_json_argument, figure
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

STACKS = ["bare", "aegis", "peers"]
ISSUER, AUDIENCE = "https://users.example", "users-api"
Call = Callable[[], Awaitable[None]]


async def user(request: Request) -> Response:
    """The endpoint: a small JSON document."""
    return JSONResponse({"id": request.path_params["user_id"], "name": "Ada", "active": True})


class PyJWTBearer:
    """The peers' token check: PyJWT with the claim checks aegis.auth makes, 401 otherwise."""

    def __init__(self, app: ASGIApp, key: Any) -> None:
        """Wrap ``app``; ``key`` is the public key object."""
        self.app = app
        self.key = key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the bearer token, then call the app with the claims in the scope."""
        import jwt  # the peers' stack imports only what it uses

        header = dict(scope["headers"]).get(b"authorization", b"")
        try:
            claims = jwt.decode(
                header.removeprefix(b"Bearer ").decode(),
                self.key,
                algorithms=["EdDSA"],
                audience=AUDIENCE,
                issuer=ISSUER,
                leeway=30,
                options={"require": ["exp", "iat", "sub", "jti", "iss", "aud", "typ"]},
            )
        except jwt.PyJWTError:
            await JSONResponse({"detail": "unauthorized"}, status_code=401)(scope, receive, send)
            return
        scope["user"] = claims
        await self.app(scope, receive, send)


class JsonAccessLog:
    """The peers' access line: stdlib logging with python-json-logger."""

    def __init__(self, app: ASGIApp) -> None:
        """Wrap ``app`` and log one JSON line per request to /dev/null."""
        from pythonjsonlogger.json import JsonFormatter

        self.app = app
        handler = logging.StreamHandler(open(os.devnull, "w"))  # noqa: PTH123, SIM115
        handler.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        self.log = logging.getLogger("bench.access")
        self.log.handlers[:] = [handler]
        self.log.propagate = False
        self.log.setLevel(logging.INFO)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the request, then write its access line."""
        status = 500
        started = time.perf_counter()

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await self.app(scope, receive, send_status)
        self.log.info(
            "request",
            extra={
                "method": scope["method"],
                "path": scope["path"],
                "status": status,
                "duration_ms": (time.perf_counter() - started) * 1000,
            },
        )


def make_app(stack: str) -> tuple[ASGIApp, str]:
    """The app of ``stack`` and a valid bearer token for it."""
    from aegis.auth import JWTKey, KeySet, TokenService

    key = JWTKey.generate("k1", "EdDSA")
    tokens = TokenService(KeySet([key]), issuer=ISSUER, audience=AUDIENCE)
    token = tokens.issue_access_token("user-1", roles=["user"])
    routes = [Route("/users/{user_id}", user)]
    if stack == "bare":
        return Starlette(routes=routes), token
    if stack == "aegis":
        from prometheus_client import CollectorRegistry

        from aegis.log import LogSettings, StreamOutput
        from aegis.service import AuthSettings, ServiceSettings, bootstrap

        sink = open(os.devnull, "wb")  # noqa: PTH123, SIM115 - open for the process's life
        app = Starlette(routes=routes)
        settings = ServiceSettings(
            name="bench",
            log=LogSettings(console=None, level="INFO"),
            auth=AuthSettings(issuer=ISSUER, audience=AUDIENCE, algorithm="EdDSA"),
        )
        service = bootstrap(
            app, settings, registry=CollectorRegistry(), log_outputs=[StreamOutput(sink)]
        )
        assert service.tokens is not None  # auth is configured above
        return app, service.tokens.issue_access_token("user-1", roles=["user"])
    import jwt
    from asgi_correlation_id import CorrelationIdMiddleware
    from starlette_exporter import PrometheusMiddleware

    middleware = [
        Middleware(CorrelationIdMiddleware),
        Middleware(JsonAccessLog),
        Middleware(PrometheusMiddleware),
        Middleware(PyJWTBearer, key=jwt.PyJWK(key.public_jwk()).key),
    ]
    return Starlette(routes=routes, middleware=middleware), token


def request_call(app: ASGIApp, token: str) -> Call:
    """One in-process GET through ``app``; raises unless it answers 200."""
    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/users/42",
        "raw_path": b"/users/42",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"bench"), (b"authorization", f"Bearer {token}".encode())],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start" and message["status"] != 200:
            raise RuntimeError(f"answered {message['status']}")

    async def call() -> None:
        await app(dict(scope), receive, send)

    return call


async def measure(stack: str, requests: int, rounds: int) -> dict[str, float]:
    """CPU, RSS and allocation figures of ``stack`` (run in a child interpreter)."""
    app, token = make_app(stack)
    call = request_call(app, token)
    for _ in range(200):
        await call()
    cpu = float("inf")
    for _ in range(rounds):
        started = time.process_time()
        for _ in range(requests):
            await call()
        cpu = min(cpu, (time.process_time() - started) / requests)
    peak_rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    gc.collect()
    tracemalloc.start()
    peaks = []
    for _ in range(200):
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        await call()
        peaks.append(tracemalloc.get_traced_memory()[1] - before)
    gc.collect()
    held_before = tracemalloc.get_traced_memory()[0]
    for _ in range(requests):
        await call()
    gc.collect()
    held_after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return {
        "cpu_us": cpu * 1e6,
        "peak_rss_mib": peak_rss_kib / 1024,
        "request_peak_kib": statistics.median(peaks) / 1024,
        "held_bytes_per_request": (held_after - held_before) / requests,
    }


def rss_kib() -> int:
    """The current resident set size of this process, in KiB (from /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


async def soak(requests: int) -> dict[str, float]:
    """RSS of the aegis stack after a tenth of ``requests`` and after all of them."""
    app, token = make_app("aegis")
    call = request_call(app, token)
    started = time.monotonic()
    tenth = max(requests // 10, 1)
    for _ in range(tenth):
        await call()
    gc.collect()
    warm = rss_kib()
    for _ in range(requests - tenth):
        await call()
    gc.collect()
    end = rss_kib()
    return {
        "requests": requests,
        "seconds": time.monotonic() - started,
        "warm_rss_mib": warm / 1024,
        "end_rss_mib": end / 1024,
        "growth_bytes_per_request": (end - warm) * 1024 / max(requests - tenth, 1),
    }


def component(filename: str) -> str:
    """The library a profiled function belongs to, from its file path.

    An aegis member is found by its package folder (``src/aegis/<member>/`` of an editable
    install, ``site-packages/aegis/<member>/`` of a wheel), never by an ``/aegis/`` anywhere in
    the path: a checkout in a folder named ``aegis`` holds the virtualenv and the standard
    library too.
    """
    path = filename.replace("\\", "/")
    if "site-packages/" in path:
        path = path.rsplit("site-packages/", 1)[1]
        if path.startswith("aegis/"):
            return "aegis." + path.split("/", 2)[1]
        return path.split("/", 1)[0].removesuffix(".py")
    if "/src/aegis/" in path:
        return "aegis." + path.rsplit("/src/aegis/", 1)[1].split("/", 1)[0]
    if path.startswith("~") or "/lib/python3" in path:
        return "Python runtime (asyncio, stdlib, builtins)"
    return "benchmark (endpoint, driver)"


async def profile(requests: int) -> dict[str, Any]:
    """CProfile of the aegis stack: own time per component and the hottest functions."""
    app, token = make_app("aegis")
    call = request_call(app, token)
    for _ in range(200):
        await call()
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(requests):
        await call()
    profiler.disable()
    stats = pstats.Stats(profiler)
    entries: Any = stats.stats  # type: ignore[attr-defined] # pstats keeps its table untyped
    by_component: dict[str, float] = {}
    functions = []
    total = 0.0
    for (filename, line, name), (_, calls, own, _cumulative, _) in entries.items():
        total += own
        by_component[component(filename)] = by_component.get(component(filename), 0.0) + own
        functions.append(
            (own, f"{component(filename)}: {name} ({Path(filename).name}:{line})", calls)
        )
    functions.sort(reverse=True)
    return {
        "total_s": total,
        "components": sorted(by_component.items(), key=lambda item: -item[1]),
        "functions": [(label, own, calls) for own, label, calls in functions[:12]],
    }


def child(arguments: list[str]) -> dict[str, Any]:
    """Run this script in a fresh interpreter with ``arguments``; its JSON answer."""
    output = subprocess.run(
        [sys.executable, __file__, *arguments], capture_output=True, text=True, check=True
    ).stdout
    answer: dict[str, Any] = json.loads(output.splitlines()[-1])
    return answer


def report(
    figures: dict[str, dict[str, float]], profiled: dict[str, Any], requests: int
) -> Results:
    """Print the tables and return them as --json results."""
    results = Results(
        "aegis-all",
        "service_memory",
        ["aegis-log", "aegis-obs", "aegis-auth", "starlette", "pyjwt", "asgi-correlation-id",
         "starlette-exporter", "python-json-logger"],
    )  # fmt: skip
    labels = {
        "bare": "bare Starlette",
        "aegis": "aegis-service bootstrap(): log + obs + error + auth",
        "peers": "correlation-id + exporter + PyJWT + json-logger",
    }
    print(
        f"{'stack':<50}{'CPU µs/req':>11}{'peak RSS MiB':>14}{'KiB/req peak':>14}{'B held/req':>12}"
    )
    for stack, values in figures.items():
        print(
            f"{labels[stack]:<50}{values['cpu_us']:>11.1f}{values['peak_rss_mib']:>14.1f}"
            f"{values['request_peak_kib']:>14.1f}{values['held_bytes_per_request']:>12.1f}"
        )
    for key, name, unit in [
        ("cpu_us", "request through every middleware (aegis caches verified tokens)", "CPU µs/req"),
        ("peak_rss_mib", f"peak RSS after {requests:,} requests", "MiB"),
        ("request_peak_kib", "allocation peak of one request (tracemalloc)", "KiB"),
    ]:
        results.case(
            name,
            unit,
            aegis=figure(labels["aegis"], figures["aegis"][key]),
            raw=figure(labels["bare"], figures["bare"][key]),
            peers=[figure(labels["peers"], figures["peers"][key])],
            higher_is_better=False,
        )
    results.table(
        f"Memory held after {requests:,} more requests (growth; ~0 means no leak)",
        ["stack", "bytes held per request"],
        [[labels[s], f"{v['held_bytes_per_request']:.1f}"] for s, v in figures.items()],
    )
    total = profiled["total_s"]
    print(f"\nprofile of {requests:,} aegis requests, own time per component")
    rows = []
    for name, own in profiled["components"]:
        print(f"  {name:<50}{own / total:>7.1%}")
        rows.append([name, f"{own / total:.1%}", f"{own / requests * 1e6:.1f}"])
    results.table(
        "Bottlenecks: own time per component in a profiled aegis request (cProfile)",
        ["component", "share", "µs/req (under the profiler)"],
        rows,
    )
    results.table(
        "Bottlenecks: hottest functions by own time",
        ["function", "share", "calls/req"],
        [
            [label, f"{own / total:.1%}", f"{calls / requests:g}"]
            for label, own, calls in profiled["functions"]
        ],
    )
    return results


def main() -> None:
    """Parse the arguments; in a child, measure one stack; otherwise run and report them all."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--soak", type=int, default=0, help="requests of the soak run (0: none)")
    parser.add_argument("--child", choices=[*STACKS, "profile", "soak"], help=argparse.SUPPRESS)
    add_json_argument(parser)
    args = parser.parse_args()
    if args.child == "soak":
        print(json.dumps(asyncio.run(soak(args.soak))))
        return
    if args.child == "profile":
        print(json.dumps(asyncio.run(profile(args.requests))))
        return
    if args.child:
        print(json.dumps(asyncio.run(measure(args.child, args.requests, args.rounds))))
        return
    common = ["--requests", str(args.requests), "--rounds", str(args.rounds)]
    figures = {stack: child(["--child", stack, *common]) for stack in STACKS}
    profiled = child(["--child", "profile", *common])
    results = report(figures, profiled, args.requests)
    if args.soak:
        soaked = child(["--child", "soak", "--soak", str(args.soak)])
        print(
            f"\nsoak: {soaked['requests']:,} aegis requests in {soaked['seconds']:.0f} s, RSS "
            f"{soaked['warm_rss_mib']:.1f} MiB after a tenth, {soaked['end_rss_mib']:.1f} MiB at "
            f"the end: {soaked['growth_bytes_per_request']:.3f} bytes/request"
        )
        results.table(
            "Soak: the aegis stack's RSS across a long run (no tracemalloc)",
            ["requests", "seconds", "RSS after a tenth MiB", "RSS at the end MiB",
             "growth bytes/request"],
            [[f"{soaked['requests']:,}", f"{soaked['seconds']:.0f}",
              f"{soaked['warm_rss_mib']:.1f}", f"{soaked['end_rss_mib']:.1f}",
              f"{soaked['growth_bytes_per_request']:.3f}"]],
        )  # fmt: skip
    results.write(args.json)


if __name__ == "__main__":
    main()

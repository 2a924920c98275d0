"""Built-in checks against real PostgreSQL, Redis and Kafka: up, stopped, and unreachable.

"Stopped" starts an embedded server of our own, checks it, stops it and checks again;
"unreachable" points at a loopback port nothing listens on.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from sqlalchemy import create_engine
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from aegis.obs import (
    HealthRegistry,
    HealthStatus,
    kafka_check,
    redis_check,
    sqlalchemy_check,
)
from aegis.testing import start_server

pytestmark = pytest.mark.anyio


def closed_port() -> int:
    """A loopback port that nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def async_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


async def status_of(registry: HealthRegistry) -> tuple[HealthStatus, str | None]:
    (result,) = (await registry.run()).checks
    return result.status, result.error


def fresh_registry() -> HealthRegistry:
    return HealthRegistry(cache_seconds=0, default_timeout=5)


@pytest.fixture
async def engine(postgres_database: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(async_url(postgres_database))
    yield engine
    await engine.dispose()


async def test_postgres_check_is_up_against_a_real_server(engine: AsyncEngine) -> None:
    health = fresh_registry()
    health.add("postgres", sqlalchemy_check(engine))
    assert await status_of(health) == (HealthStatus.UP, None)


async def test_sync_engine_check_is_up_against_a_real_server(postgres_database: str) -> None:
    engine = create_engine(async_url(postgres_database))
    health = fresh_registry()
    health.add("postgres", sqlalchemy_check(engine))
    assert await status_of(health) == (HealthStatus.UP, None)
    engine.dispose()


async def test_postgres_check_goes_down_when_the_server_stops() -> None:
    server = start_server("postgres")
    engine = create_async_engine(async_url(server.url))
    health = fresh_registry()
    health.add("postgres", sqlalchemy_check(engine))
    try:
        assert await status_of(health) == (HealthStatus.UP, None)
        server.stop()
        status, error = await status_of(health)
    finally:
        server.stop()
        await engine.dispose()
    assert status is HealthStatus.DOWN
    assert error is not None
    assert "OperationalError" in error


async def test_postgres_check_is_down_when_unreachable() -> None:
    engine = create_async_engine(f"postgresql+psycopg://postgres@127.0.0.1:{closed_port()}/x")
    health = fresh_registry()
    health.add("postgres", sqlalchemy_check(engine))
    status, error = await status_of(health)
    await engine.dispose()
    assert status is HealthStatus.DOWN
    assert error is not None
    assert "refused" in error.lower()


async def test_redis_check_is_up_against_a_real_server(redis_url: str) -> None:
    client = Redis.from_url(redis_url)
    health = fresh_registry()
    health.add("redis", redis_check(client))
    assert await status_of(health) == (HealthStatus.UP, None)
    await client.aclose()


async def test_redis_check_goes_down_when_the_server_stops() -> None:
    server = start_server("redis")
    client = Redis.from_url(server.url)
    health = fresh_registry()
    health.add("redis", redis_check(client))
    try:
        assert await status_of(health) == (HealthStatus.UP, None)
        server.stop()
        status, error = await status_of(health)
    finally:
        server.stop()
        await client.aclose()
    assert status is HealthStatus.DOWN
    assert error is not None
    assert "ConnectionError" in error


async def test_redis_check_is_down_when_unreachable() -> None:
    client = Redis.from_url(f"redis://127.0.0.1:{closed_port()}/0")
    health = fresh_registry()
    health.add("redis", redis_check(client))
    status, error = await status_of(health)
    await client.aclose()
    assert status is HealthStatus.DOWN
    assert error is not None
    assert "ConnectionError" in error


async def test_kafka_check_is_up_against_a_real_broker(kafka_bootstrap: str) -> None:
    health = fresh_registry()
    health.add("kafka", kafka_check(kafka_bootstrap))
    (result,) = (await health.run()).checks
    assert result.status is HealthStatus.UP
    assert result.details["brokers"] >= 1


async def test_kafka_check_goes_down_when_the_broker_stops() -> None:
    server = start_server("kafka")
    health = fresh_registry()
    health.add("kafka", kafka_check({"bootstrap.servers": server.url}, timeout=1.0))
    try:
        assert (await status_of(health))[0] is HealthStatus.UP
        server.stop()
        status, error = await status_of(health)
    finally:
        server.stop()
    assert status is HealthStatus.DOWN
    assert error is not None
    assert error.startswith("KafkaException")


async def test_kafka_check_is_down_when_unreachable() -> None:
    health = fresh_registry()
    health.add("kafka", kafka_check(f"127.0.0.1:{closed_port()}", timeout=1.0))
    status, error = await status_of(health)
    assert status is HealthStatus.DOWN
    assert error is not None
    assert error.startswith("KafkaException")


async def test_service_is_down_only_while_a_critical_dependency_is_down(
    engine: AsyncEngine, redis_url: str
) -> None:
    client = Redis.from_url(redis_url)
    health = fresh_registry()
    health.add("postgres", sqlalchemy_check(engine))
    health.add("redis", redis_check(client), critical=False)
    health.add("kafka", kafka_check(f"127.0.0.1:{closed_port()}", timeout=1.0), critical=False)
    degraded = await health.run()
    await client.aclose()
    assert degraded.status is HealthStatus.DEGRADED
    assert [r.status for r in degraded.checks] == [
        HealthStatus.UP,
        HealthStatus.UP,
        HealthStatus.DOWN,
    ]

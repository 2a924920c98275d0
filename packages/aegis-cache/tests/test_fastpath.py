"""The guard of the redis-py fast path: which path is active, and the fallback when it must be."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from prometheus_client import CollectorRegistry
from redis.asyncio import BlockingConnectionPool, ConnectionPool, Redis
from redis.asyncio.connection import AbstractConnection, Connection

from aegis.cache import Cache, CacheSettings, RedisBackend
from aegis.cache._fastpath import (
    BOUNDED,
    PromptBlockingPool,
    fast_path_available,
    missing_internals,
)

pytestmark = pytest.mark.anyio


def _pool(cache: Cache) -> ConnectionPool:
    assert isinstance(cache.backend, RedisBackend)
    client = cache.backend.client
    assert isinstance(client, Redis)
    return client.connection_pool


async def test_the_installed_redis_py_takes_the_fast_path(
    redis_url: str, redis_prefix: str, registry: CollectorRegistry
) -> None:
    assert missing_internals() == []
    assert fast_path_available()
    cache = Cache(CacheSettings(url=redis_url, namespace=redis_prefix), registry=registry)
    pool = _pool(cache)
    assert isinstance(pool, PromptBlockingPool)
    assert pool.connection_class is BOUNDED[Connection]
    assert await cache.set("k", "v")
    assert await cache.get("k") == "v"
    await cache.close()


@pytest.mark.usefixtures("redis_public_path")
async def test_a_redis_py_without_the_internals_gets_the_public_path_and_one_warning(
    redis_url: str, redis_prefix: str, registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="aegis.cache"):
        caches = [
            Cache(CacheSettings(url=redis_url, namespace=redis_prefix), registry=registry)
            for _ in range(3)
        ]
    warnings = [r for r in caplog.records if r.name == "aegis.cache"]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING
    assert "send_packed_command(self, command, check_health)" in warnings[0].getMessage()
    assert "public API" in warnings[0].getMessage()
    for cache in caches:
        pool = _pool(cache)
        assert type(pool) is BlockingConnectionPool
        assert pool.connection_class is Connection
    assert await caches[0].set("k", "v")
    assert await caches[1].get("k") == "v"
    for cache in caches:
        await cache.close()


def _drop_attribute(owner: type, name: str) -> Callable[[pytest.MonkeyPatch], None]:
    """A redis-py whose ``owner`` instances no longer have ``name``."""

    def apply(patch: pytest.MonkeyPatch) -> None:
        original = owner.__init__  # type: ignore[misc]

        def init(self: object, *args: object, **kwargs: object) -> None:
            original(self, *args, **kwargs)
            delattr(self, name)

        patch.setattr(owner, "__init__", init)

    return apply


def _replace(owner: type, name: str, value: object) -> Callable[[pytest.MonkeyPatch], None]:
    def apply(patch: pytest.MonkeyPatch) -> None:
        patch.setattr(owner, name, value)

    return apply


async def _get_connection_with_a_command(
    self: ConnectionPool, command_name: str, *keys: object
) -> None:
    """The signature of redis-py before 5.3 (a command name was required)."""


def _plain_send(self: AbstractConnection, command: bytes, check_health: bool = True) -> None:
    """Not a coroutine any more."""


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (_drop_attribute(Connection, "_writer"), "Connection._writer"),
        (
            _drop_attribute(BlockingConnectionPool, "_in_maintenance"),
            "BlockingConnectionPool._in_maintenance",
        ),
        (
            _drop_attribute(BlockingConnectionPool, "_available_connections"),
            "BlockingConnectionPool._available_connections",
        ),
        (
            _replace(ConnectionPool, "get_connection", _get_connection_with_a_command),
            "ConnectionPool.get_connection() without arguments",
        ),
        (
            _replace(AbstractConnection, "send_packed_command", _plain_send),
            "AbstractConnection.send_packed_command",
        ),
        (_replace(Connection, "is_connected", True), "Connection.is_connected"),
    ],
    ids=["writer", "in_maintenance", "available", "get_connection", "send_sync", "connected"],
)
def test_the_guard_names_each_internal_a_release_could_change(
    change: Callable[[pytest.MonkeyPatch], None], named: str
) -> None:
    with pytest.MonkeyPatch.context() as patch:
        change(patch)
        missing = missing_internals()
    assert len(missing) == 1
    assert missing[0].startswith(named)
    assert missing_internals() == []  # and nothing else was disturbed

"""The guard of the redis-py fast path: which path is active, and the fallback when it must be."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from redis.asyncio import BlockingConnectionPool, ConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import AbstractConnection, Connection
from redis.asyncio.sentinel import SentinelConnectionPool, SentinelManagedConnection

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


def _commands_sent_through(patch: pytest.MonkeyPatch, client_class: Any) -> list[object]:
    """Record the commands that go through ``client_class``'s public command layer."""
    sent: list[object] = []
    original = client_class.execute_command

    async def execute_command(self: object, *args: object, **options: object) -> object:
        sent.append(args[0])
        return await original(self, *args, **options)

    patch.setattr(client_class, "execute_command", execute_command)
    return sent


@pytest.mark.parametrize(
    "kind",
    [
        "standalone",
        "standalone-public-api",
        pytest.param("cluster", marks=pytest.mark.scaleout),
        pytest.param("sentinel", marks=pytest.mark.scaleout),
    ],
)
async def test_which_path_each_client_kind_takes(
    kind: str, request: pytest.FixtureRequest, open_cache: Callable[..., Cache]
) -> None:
    """The fast path on a standalone server only; Cluster and Sentinel use redis-py's API.

    Its connection internals are those of a standalone pool: a Cluster client keeps a pool per
    node, and a Sentinel pool's connections resolve the primary when they connect.
    """
    if kind == "standalone-public-api":
        request.getfixturevalue("redis_public_path")
    if kind == "cluster":
        url = request.getfixturevalue("redis_cluster").url
    elif kind == "sentinel":
        url = request.getfixturevalue("redis_sentinel").url
    else:
        url = request.getfixturevalue("redis_url")
    cache = open_cache(url)
    assert isinstance(cache.backend, RedisBackend)
    client = cache.backend.client
    assert await cache.set("k", "v")
    with pytest.MonkeyPatch.context() as patch:
        sent = _commands_sent_through(patch, type(client))
        assert await cache.get("k") == "v"
    if kind == "standalone":
        assert sent == []  # straight to a pooled connection
        assert isinstance(_pool(cache), PromptBlockingPool)
        assert _pool(cache).connection_class in BOUNDED.values()
    else:
        assert sent == ["GET"]
    if kind == "standalone-public-api":
        assert type(_pool(cache)) is BlockingConnectionPool
        assert _pool(cache).connection_class is Connection
    if kind == "cluster":
        assert isinstance(client, RedisCluster)
    if kind == "sentinel":
        pool = _pool(cache)
        assert isinstance(pool, SentinelConnectionPool)
        assert pool.connection_class is SentinelManagedConnection
    # Only the standalone pools wait for a free connection; the backend bounds the others.
    assert (cache.backend.slots is None) == kind.startswith("standalone")

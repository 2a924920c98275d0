"""Built-in health checks: SQLAlchemy, Redis, Kafka, an HTTP URL and free disk space.

Each factory returns a :data:`~aegis.obs.HealthCheckFunction`. The client libraries are optional
extras, imported only when the check is built or run, so ``import aegis.obs`` needs none of them.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Container, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aegis.core.utils.lazy import extra_required
from aegis.obs._health import HealthCheckError, HealthCheckFunction

if TYPE_CHECKING:
    import httpx
    from redis.asyncio import Redis
    from sqlalchemy.engine import Engine
    from sqlalchemy.ext.asyncio import AsyncEngine


def sqlalchemy_check(engine: AsyncEngine | Engine) -> HealthCheckFunction:
    """Check a database by running ``SELECT 1`` on a pooled connection (``aegis-obs[sqlalchemy]``).

    A sync ``Engine`` runs in a worker thread; an ``AsyncEngine`` runs on the event loop.
    """
    with extra_required("sqlalchemy_check", {"sqlalchemy": "aegis-obs[sqlalchemy]"}):
        from sqlalchemy import text  # optional extra
        from sqlalchemy.ext.asyncio import AsyncEngine

    select_one = text("SELECT 1")

    if isinstance(engine, AsyncEngine):
        async_engine = engine

        async def check_async() -> None:
            async with async_engine.connect() as connection:
                await connection.execute(select_one)

        return check_async

    sync_engine = engine

    def select() -> None:
        with sync_engine.connect() as connection:
            connection.execute(select_one)

    async def check_sync() -> None:
        await asyncio.to_thread(select)

    return check_sync


def redis_check(client: Redis) -> HealthCheckFunction:
    """Check Redis with ``PING`` through a ``redis.asyncio.Redis`` client (``aegis-obs[redis]``)."""

    async def check() -> None:
        await client.ping()

    return check


def kafka_check(config: str | Mapping[str, Any], *, timeout: float = 1.5) -> HealthCheckFunction:
    """Check Kafka by fetching cluster metadata (``aegis-obs[kafka]``, confluent-kafka).

    Args:
        config: The bootstrap servers (``"host:9092,host2:9092"``) or a full confluent-kafka
            client configuration (security settings...).
        timeout: Seconds the metadata request may take; keep it below the check's timeout.

    The admin client is created at the first run and reused. Details give the broker count.
    """
    with extra_required("kafka_check", {"confluent_kafka": "aegis-obs[kafka]"}):
        from confluent_kafka.admin import AdminClient  # optional extra

    settings: dict[str, str | int | float | bool] = (
        {"bootstrap.servers": config} if isinstance(config, str) else dict(config)
    )
    clients: list[AdminClient] = []

    def metadata() -> dict[str, Any]:
        if not clients:
            clients.append(AdminClient(settings))
        cluster = clients[0].list_topics(timeout=timeout)
        return {"brokers": len(cluster.brokers)}

    async def check() -> dict[str, Any]:
        return await asyncio.to_thread(metadata)

    return check


def http_check(
    url: str,
    *,
    expected_status: Container[int] = range(200, 300),
    client: httpx.AsyncClient | None = None,
) -> HealthCheckFunction:
    """Check an HTTP dependency with ``GET url`` (``aegis-obs[http]``).

    Args:
        url: The URL to fetch.
        expected_status: Statuses that count as UP (2xx by default).
        client: The client to use (its timeouts, auth, transport); a fresh one per run when
            ``None``.

    The check raises :class:`HealthCheckError` naming the status when it is not expected.
    """
    with extra_required("http_check", {"httpx": "aegis-obs[http]"}):
        import httpx  # optional extra

    async def fetch(session: httpx.AsyncClient) -> dict[str, Any]:
        response = await session.get(url)
        if response.status_code not in expected_status:
            raise HealthCheckError(f"GET {url} answered {response.status_code}")
        return {"status_code": response.status_code}

    async def check() -> dict[str, Any]:
        if client is not None:
            return await fetch(client)
        async with httpx.AsyncClient() as session:
            return await fetch(session)

    return check


def disk_space_check(
    path: str | Path = ".",
    *,
    min_free_bytes: int = 0,
    min_free_ratio: float = 0.05,
) -> HealthCheckFunction:
    """Check that the file system holding ``path`` has enough free space.

    Args:
        path: Any path on the file system to watch.
        min_free_bytes: DOWN below this many free bytes.
        min_free_ratio: DOWN below this share of the total size free (0 to 1).

    Details give ``free_bytes`` and ``total_bytes``.
    """

    async def check() -> dict[str, Any]:
        usage = shutil.disk_usage(path)
        if usage.free < min_free_bytes or usage.free < usage.total * min_free_ratio:
            raise HealthCheckError(
                f"{usage.free} bytes free of {usage.total} on {path}; need at least "
                f"{min_free_bytes} bytes and {min_free_ratio:.0%}"
            )
        return {"free_bytes": usage.free, "total_bytes": usage.total}

    return check


__all__ = ["disk_space_check", "http_check", "kafka_check", "redis_check", "sqlalchemy_check"]

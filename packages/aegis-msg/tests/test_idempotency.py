"""A redelivered event is handled once: Redis and database stores of processed ids."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from prometheus_client import CollectorRegistry
from pydantic import BaseModel
from redis.asyncio import Redis
from sqlalchemy import update
from sqlalchemy.ext.asyncio import create_async_engine

from aegis.msg import (
    Claim,
    Event,
    EventInProgressError,
    EventPublisher,
    EventRegistry,
    EventSubscriber,
    IdempotencyStore,
    InMemoryTransport,
    RedisIdempotencyStore,
    SqlIdempotencyStore,
    idempotent,
)

if TYPE_CHECKING:
    from conftest import Collector

pytestmark = pytest.mark.anyio


class MailData(BaseModel):
    to: str


class MailRequested(Event[MailData]):
    type = "test.mail.requested"
    topic = "mail"


@pytest.fixture(params=["redis", "sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[IdempotencyStore]:
    if request.param == "redis":
        client = Redis.from_url(request.getfixturevalue("redis_url"))
        yield RedisIdempotencyStore(client, prefix=request.getfixturevalue("redis_prefix"))
        await client.aclose()
        return
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'ids.db'}"
    else:
        url = request.getfixturevalue("postgres_database")
        url = url.replace("postgresql://", "postgresql+asyncpg://", 1)
    engine = create_async_engine(url)
    sql = SqlIdempotencyStore(
        engine, table_name=f"processed_{tmp_path.name[-8:]}".replace("-", "_")
    )
    await sql.create_table()
    yield sql
    async with engine.begin() as connection:
        await connection.run_sync(sql.table.drop)
    await engine.dispose()


async def test_a_redelivered_event_is_handled_once(store: IdempotencyStore) -> None:
    handled: list[str] = []

    @idempotent(store)
    async def send_mail(event: MailRequested) -> None:
        handled.append(event.data.to)

    event = MailRequested(data=MailData(to="kim@example.com"))
    await send_mail(event)
    await send_mail(event)
    await send_mail(MailRequested(data=MailData(to="lee@example.com")))
    assert handled == ["kim@example.com", "lee@example.com"]


async def test_a_failed_handler_releases_its_claim_so_the_retry_runs(
    store: IdempotencyStore,
) -> None:
    calls = 0

    @idempotent(store, name="mailer")
    async def send_mail(event: MailRequested) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("smtp down")

    event = MailRequested(data=MailData(to="kim@example.com"))
    with pytest.raises(ConnectionError):
        await send_mail(event)
    await send_mail(event)
    await send_mail(event)
    assert calls == 2


async def test_an_event_claimed_elsewhere_is_refused_as_in_progress(
    store: IdempotencyStore,
) -> None:
    event = MailRequested(data=MailData(to="kim@example.com"))
    assert await store.claim(f"mailer:{event.id}") is Claim.NEW

    @idempotent(store, name="mailer")
    async def send_mail(event: MailRequested) -> None:
        raise AssertionError("must not run while another consumer holds the claim")

    with pytest.raises(EventInProgressError, match="being handled by another consumer"):
        await send_mail(event)
    await store.complete(f"mailer:{event.id}")
    await send_mail(event)  # done: skipped without running


async def test_a_stale_claim_of_a_crashed_consumer_is_taken_over(tmp_path: Path) -> None:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'ids.db'}")
    crashed = SqlIdempotencyStore(engine, lease=60)
    await crashed.create_table()
    assert await crashed.claim("k") is Claim.NEW
    successor = SqlIdempotencyStore(engine, lease=60)
    assert await successor.claim("k") is Claim.BUSY
    async with engine.begin() as connection:  # the lease runs out
        await connection.execute(update(crashed.table).values(updated_at_ms=0))
    assert await successor.claim("k") is Claim.NEW
    await crashed.release("k")  # the crashed claimer's token no longer holds it
    await successor.complete("k")
    assert await crashed.claim("k") is Claim.DONE
    assert await successor.purge() == 0
    purging = SqlIdempotencyStore(engine, ttl=0)
    async with engine.begin() as connection:
        await connection.execute(update(purging.table).values(updated_at_ms=1))
    assert await purging.purge() == 1
    await engine.dispose()


async def test_redis_claims_hold_only_for_their_lease(redis_url: str, redis_prefix: str) -> None:
    async with Redis.from_url(redis_url) as client:
        store = RedisIdempotencyStore(client, prefix=redis_prefix, lease=30, ttl=3600)
        assert await store.claim("k") is Claim.NEW
        assert 0 < await client.pttl(f"{redis_prefix}k") <= 30_000
        await store.complete("k")
        assert 30_000 < await client.pttl(f"{redis_prefix}k") <= 3_600_000


async def test_subscriber_with_an_idempotent_handler_skips_a_republished_event(
    collector: Collector,
    redis_url: str,
    redis_prefix: str,
) -> None:
    transport = InMemoryTransport()
    registry = EventRegistry()
    subscriber = EventSubscriber(
        transport, group_id="mailer", registry=registry, metrics_registry=CollectorRegistry()
    )
    async with Redis.from_url(redis_url) as client:

        @subscriber.on(MailRequested)
        @idempotent(RedisIdempotencyStore(client, prefix=redis_prefix))
        async def send_mail(event: MailRequested) -> None:
            collector.add(event.id)

        publisher = EventPublisher(transport, registry=registry)
        event = MailRequested(data=MailData(to="kim@example.com"))
        other = MailRequested(data=MailData(to="lee@example.com"))
        await publisher.publish_batch([event, event, other])
        async with subscriber:
            assert await collector.wait(2) == [event.id, other.id]
        assert len(transport.messages("mail")) == 3

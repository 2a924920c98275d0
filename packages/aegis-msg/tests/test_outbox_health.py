"""The relay's backlog check: the age of the oldest unsent row against ``max_pending_age``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import ClassVar, Self

import pytest
from prometheus_client import CollectorRegistry
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from aegis.core.errors import ConfigurationError
from aegis.msg import (
    BatchResult,
    DeliveryResult,
    Event,
    EventRegistry,
    InMemoryTransport,
    Outbox,
    OutboxRelay,
    OutgoingRecord,
    PublishError,
    _outbox,
)

pytestmark = pytest.mark.anyio


class NoteData(BaseModel):
    note: str


class Noted(Event[NoteData]):
    type = "test.health.noted"
    topic = "notes"


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'outbox.db'}")
    yield engine
    await engine.dispose()


async def test_the_check_fails_while_the_oldest_row_waits_too_long_and_passes_once_sent(
    engine: AsyncEngine,
) -> None:
    outbox = Outbox(source="notes", registry=EventRegistry())
    await outbox.create_table(engine)
    relay = OutboxRelay(
        engine,
        InMemoryTransport(),
        outbox=outbox,
        max_pending_age=0.2,
        metrics_registry=CollectorRegistry(),
    )
    assert await relay.oldest_pending_age() is None
    assert (await relay.health_check())["oldest_pending_seconds"] is None

    async with async_sessionmaker(engine)() as session, session.begin():
        await outbox.add(session, Noted(data=NoteData(note="a")))
    age = await relay.oldest_pending_age()
    assert age is not None
    assert age < 0.2
    await relay.health_check()  # young enough
    while (age := await relay.oldest_pending_age() or 0.0) <= 0.2:
        await asyncio.sleep(0.2 - age + 0.01)
    with pytest.raises(PublishError, match="oldest unsent outbox event waits") as failed:
        await relay.health_check()
    assert failed.value.retriable
    assert failed.value.details["max_pending_age"] == 0.2

    assert await relay.relay_once() == 1  # the backlog drains: the check passes again
    assert await relay.oldest_pending_age() is None
    await relay.health_check()


@pytest.mark.parametrize("age", [0, -1.0])
async def test_max_pending_age_must_be_positive(engine: AsyncEngine, age: float) -> None:
    with pytest.raises(ConfigurationError, match="max_pending_age"):
        OutboxRelay(engine, InMemoryTransport(), outbox=Outbox(), max_pending_age=age)


class FrozenClock(datetime):
    """The outbox module's clock, at a time the test sets."""

    at: ClassVar[float] = datetime(2026, 1, 1, tzinfo=UTC).timestamp()

    @classmethod
    def now(cls, tz: tzinfo | None = None) -> Self:
        return cls.fromtimestamp(cls.at, tz)


class DownTransport(InMemoryTransport):
    async def send_batch(self, records: Iterable[OutgoingRecord]) -> BatchResult:
        error = PublishError("broker down", retriable=True)
        return BatchResult.of(DeliveryResult(r.topic, -1, -1, error) for r in records)


async def test_the_check_passes_at_max_pending_age_and_fails_after_it_naming_the_last_error(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_outbox, "datetime", FrozenClock)
    written = FrozenClock.at
    outbox = Outbox(source="notes", registry=EventRegistry())
    await outbox.create_table(engine)
    async with async_sessionmaker(engine)() as session, session.begin():
        await outbox.add(session, Noted(data=NoteData(note="a")))
    relay = OutboxRelay(
        engine,
        DownTransport(),
        outbox=outbox,
        max_pending_age=60,
        metrics_registry=CollectorRegistry(),
    )
    monkeypatch.setattr(FrozenClock, "at", written - 5)  # another server's clock ran ahead
    assert await relay.oldest_pending_age() == 0.0
    monkeypatch.setattr(FrozenClock, "at", written + 1.23456)
    assert (await relay.health_check())["oldest_pending_seconds"] == 1.235  # in milliseconds
    monkeypatch.setattr(FrozenClock, "at", written + 60)
    assert (await relay.health_check())["oldest_pending_seconds"] == 60.0  # not more than 60
    monkeypatch.setattr(FrozenClock, "at", written + 61)
    with pytest.raises(PublishError, match=r"waits for 61\.0 s \(more than 60 s\): no error$"):
        await relay.health_check()
    assert await relay.relay_once() == 0
    with pytest.raises(PublishError, match=r"\(more than 60 s\): broker down$") as failed:
        await relay.health_check()
    assert failed.value.details["last_error"] == "broker down"

"""A consumer killed mid-batch loses nothing: its successor resumes from the committed offset."""

from __future__ import annotations

import asyncio
import signal
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from prometheus_client import CollectorRegistry
from pydantic import BaseModel

from aegis.msg import (
    Event,
    EventPublisher,
    EventRegistry,
    EventSubscriber,
    KafkaSettings,
    KafkaTransport,
)

if TYPE_CHECKING:
    from conftest import Collector

pytestmark = pytest.mark.anyio

CONSUMER = textwrap.dedent(
    """
    import asyncio, os, signal, sys
    from pydantic import BaseModel
    from aegis.msg import Event, EventSubscriber, KafkaSettings, KafkaTransport

    class SeqData(BaseModel):
        seq: int

    class Numbered(Event[SeqData]):
        type = "test.numbered"

    bootstrap, group, topic, log, kill_after = sys.argv[1:]

    async def main() -> None:
        settings = KafkaSettings(
            bootstrap_servers=bootstrap,
            consumer={"session.timeout.ms": 6000, "heartbeat.interval.ms": 500},
        )
        async with KafkaTransport(settings) as kafka:
            subscriber = EventSubscriber(kafka, group_id=group, batch_size=10)
            handled = 0

            @subscriber.on(Numbered, topic=topic)
            async def record(event: Numbered) -> None:
                nonlocal handled
                with open(log, "a") as out:
                    out.write(f"{event.data.seq}\\n")
                handled += 1
                if handled == int(kill_after):
                    os.kill(os.getpid(), signal.SIGKILL)  # no stop(), no last commit
                await asyncio.sleep(0.01)

            async with subscriber:
                await asyncio.Event().wait()

    asyncio.run(main())
    """
)


class SeqData(BaseModel):
    seq: int


class Numbered(Event[SeqData]):
    type = "test.numbered"


async def test_consumer_killed_mid_batch_is_resumed_by_the_next_without_losing_an_event(
    kafka_bootstrap: str,
    kafka_topic: str,
    group_id: str,
    tmp_path: Path,
    collector: Collector,
) -> None:
    registry = EventRegistry()
    async with KafkaTransport(_settings(kafka_bootstrap)) as kafka:
        publisher = EventPublisher(kafka, topic=kafka_topic, registry=registry)
        results = await publisher.publish_batch([Numbered(data=SeqData(seq=i)) for i in range(60)])
        assert all(result.ok for result in results)

        script, log = tmp_path / "consumer.py", tmp_path / "handled.txt"
        script.write_text(CONSUMER)
        process = await asyncio.create_subprocess_exec(
            sys.executable, str(script), kafka_bootstrap, group_id, kafka_topic, str(log), "35"
        )
        assert await asyncio.wait_for(process.wait(), 60) == -signal.SIGKILL
        before = [int(line) for line in log.read_text().split()]
        assert before == list(range(35))

        successor = EventSubscriber(
            kafka, group_id=group_id, registry=registry, metrics_registry=CollectorRegistry()
        )

        @successor.on(Numbered, topic=kafka_topic)
        async def record(event: Numbered) -> None:
            collector.add(event.data.seq)

        async with successor:
            after = await collector.wait_until(lambda seen: 59 in seen)
    assert 0 < after[0] <= 35  # resumed from a commit, not from the start, and not past it
    assert after == list(range(after[0], 60))


def _settings(bootstrap: str) -> KafkaSettings:
    return KafkaSettings(
        bootstrap_servers=bootstrap,
        consumer={"session.timeout.ms": 6000, "heartbeat.interval.ms": 500},
    )

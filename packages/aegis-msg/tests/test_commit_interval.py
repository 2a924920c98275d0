"""``commit_interval``: how often a running subscriber commits, on both transports.

While events keep coming, finished events' offsets go out at most once per interval; ``stop()``
commits everything finished whatever the interval, so at-least-once holds either way.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import pytest
from confluent_kafka import ConsumerGroupTopicPartitions
from confluent_kafka.admin import AdminClient
from pydantic import BaseModel

from aegis.core.errors import ConfigurationError
from aegis.msg import Event, EventSubscriber, InMemoryTransport, KafkaTransport

if TYPE_CHECKING:
    from conftest import Collector, MsgEnv


class TickData(BaseModel):
    seq: int


class Tick(Event[TickData]):
    type = "test.commit.tick"


def ticks(start: int, count: int) -> list[Tick]:
    return [Tick(data=TickData(seq=seq)) for seq in range(start, start + count)]


async def committed(env: MsgEnv, topic: str) -> int:
    """The next offset the test's group would read from ``topic`` (one partition), 0 if none."""
    transport = env.transport
    if isinstance(transport, InMemoryTransport):
        return transport.committed(env.group_id, topic)
    assert isinstance(transport, KafkaTransport)
    admin = AdminClient({"bootstrap.servers": transport.settings.bootstrap_servers})
    request = [ConsumerGroupTopicPartitions(env.group_id)]
    future = admin.list_consumer_group_offsets(request)[env.group_id]
    found = await asyncio.wrap_future(future)
    # A partition without a committed offset reports a negative one (OFFSET_INVALID).
    return max([0, *(int(tp.offset) for tp in found.topic_partitions if tp.topic == topic)])


async def committed_reaches(env: MsgEnv, topic: str, offset: int) -> None:
    async with asyncio.timeout(30):
        while await committed(env, topic) < offset:
            await asyncio.sleep(0.05)  # the broker's answer is polled: no event to await


def collecting(env: MsgEnv, topic: str, collector: Collector, **options: Any) -> EventSubscriber:
    """A subscriber of the test's group that collects the ticks of ``topic`` it handles."""
    subscriber = env.subscriber(**options)

    @subscriber.on(Tick, topic=topic)
    async def on_tick(event: Tick) -> None:
        collector.add(event.data.seq)

    return subscriber


@pytest.mark.anyio
async def test_a_running_subscriber_commits_what_it_finished_by_default(
    env: MsgEnv, collector: Collector
) -> None:
    """The default interval, 0, commits with the fetches: while running, not only on stop()."""
    topic = env.topic("ticks")
    async with collecting(env, topic, collector):
        await env.publisher(topic=topic).publish_batch(ticks(0, 20))
        await collector.wait(20)
        await committed_reaches(env, topic, 20)


@pytest.mark.anyio
async def test_within_the_interval_nothing_is_committed_and_stop_commits_all_finished(
    env: MsgEnv, collector: Collector
) -> None:
    topic = env.topic("ticks")
    publisher = env.publisher(topic=topic)
    async with collecting(env, topic, collector, commit_interval=3600.0):
        # Fetches go on and events finish, but no commit goes out within the interval.
        for start in (0, 10, 20):
            await publisher.publish_batch(ticks(start, 10))
            await collector.wait(start + 10)
        assert await committed(env, topic) == 0
    assert await committed(env, topic) == 30  # stop() committed everything finished
    assert collector.items == list(range(30))


def test_a_negative_interval_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="commit_interval must be 0 or more, not -1"):
        EventSubscriber(InMemoryTransport(), group_id="g", commit_interval=-1)

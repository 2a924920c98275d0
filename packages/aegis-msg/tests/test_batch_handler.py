"""Batch handlers (``on_batch``), on the in-memory transport and on a real Kafka-protocol broker.

A batch handler gets lists of events; a failure it reports for one event is retried, forwarded
to the retry topic and dead-lettered for that event alone, and every key stays in order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
from pydantic import BaseModel

from aegis.core.errors import ConfigurationError, InvalidInputError
from aegis.msg import BatchFailedError, Event

if TYPE_CHECKING:
    from conftest import Collector, MsgEnv

pytestmark = pytest.mark.anyio


class StepData(BaseModel):
    key: str
    seq: int


class Step(Event[StepData]):
    type = "test.batch.step"
    key_field = "key"


def header(message: Any, name: str) -> bytes:
    values = [value for key, value in message.headers() or [] if key == name]
    assert values, f"no {name} header"
    return values[-1]  # type: ignore[no-any-return]


def steps(keys: list[str], count: int) -> list[Step]:
    return [Step(data=StepData(key=key, seq=seq)) for seq in range(count) for key in keys]


def in_order_per_key(seen: list[tuple[str, int]], keys: list[str]) -> dict[str, list[int]]:
    return {key: [seq for k, seq in seen if k == key] for key in keys}


async def test_a_batch_handler_gets_lists_of_one_partitions_events_in_order(
    env: MsgEnv, collector: Collector
) -> None:
    """Each call holds events of one partition, in offset order, at most max_size of them."""
    topic = env.topic("batches", partitions=3)
    publisher = env.publisher(topic=topic)
    subscriber = env.subscriber()
    calls: list[list[Step]] = []

    @subscriber.on_batch(Step, topic=topic, max_size=8)
    async def on_steps(events: list[Step]) -> None:
        calls.append(events)
        for event in events:
            collector.add((event.data.key, event.data.seq))

    keys = [f"k{i}" for i in range(6)]
    events = steps(keys, 10)
    assert all(result.ok for result in await publisher.publish_batch(events))
    async with subscriber:
        seen = await collector.wait(len(events))
    assert sorted(seen) == sorted((e.data.key, e.data.seq) for e in events)
    assert in_order_per_key(seen, keys) == {key: list(range(10)) for key in keys}
    assert all(1 <= len(call) <= 8 for call in calls)
    assert any(len(call) > 1 for call in calls)
    placed = await _placed(env, events)
    partition_of = {e.data.key: r.partition for e, r in zip(events, placed, strict=True)}
    assert all(len({partition_of[e.data.key] for e in call}) == 1 for call in calls)
    labels = {"topic": topic, "type": Step.type, "outcome": "ok"}
    assert env.metrics.get_sample_value("aegis_msg_consumed_total", labels) == len(events)


async def _placed(env: MsgEnv, events: list[Step]) -> list[Any]:
    """Where each event's key lands: the partition of a re-published copy (same key, same hash)."""
    topic = env.topic("placement", partitions=3)
    return list(await env.publisher(topic=topic).publish_batch(events))


async def test_a_failed_event_is_retried_alone_then_dead_lettered_while_its_key_stays_in_order(
    env: MsgEnv, make_collector: Callable[[], Collector]
) -> None:
    """BatchFailedError(index): the events before are done, the failed one goes its own way."""
    topic = env.topic("ledger")
    publisher = env.publisher(topic=topic)
    subscriber = env.subscriber()
    done = make_collector()
    broken_calls = make_collector()
    flaky_calls = 0

    @subscriber.on_batch(Step, topic=topic, max_size=50)
    async def book(events: list[Step]) -> None:
        nonlocal flaky_calls
        for index, event in enumerate(events):
            try:
                if event.data.key == "broken" and event.data.seq == 1:
                    broken_calls.add(len(events))
                    raise ValueError(f"cannot book {event.data.seq}")
                if event.data.key == "flaky" and event.data.seq == 1:
                    flaky_calls += 1
                    if flaky_calls <= 2:
                        raise ConnectionError("ledger unavailable")
            except Exception as exc:
                raise BatchFailedError(index) from exc
            done.add((event.data.key, event.data.seq))

    keys = ["flaky", "broken", "fine"]
    events = steps(keys, 4)
    broken = next(e for e in events if e.data.key == "broken" and e.data.seq == 1)
    await publisher.publish_batch(events)
    async with subscriber:
        seen = await done.wait(len(events) - 1)
        await broken_calls.wait(4)  # the batch call, 2 alone in process, 1 from the retry topic
        (dead,) = await env.read(f"{topic}.DLT", 1)
    assert in_order_per_key(seen, keys) == {
        "flaky": [0, 1, 2, 3],
        "broken": [0, 2, 3],
        "fine": [0, 1, 2, 3],
    }
    assert flaky_calls == 3
    assert broken_calls.items[1:] == [1, 1, 1]  # every retry hands the failed event alone
    assert header(dead, "ce_id") == broken.id.encode()
    assert header(dead, "kafka_dlt-exception-fqcn") == b"ValueError"
    assert header(dead, "kafka_dlt-exception-message") == b"cannot book 1"
    assert b"in book" in header(dead, "kafka_dlt-exception-stacktrace")
    assert int.from_bytes(header(dead, "retry_topic-attempts"), "big") == 4
    (retried,) = await env.read(f"{topic}-retry-200", 1)
    assert header(retried, "ce_id") == broken.id.encode()
    sample = env.metrics.get_sample_value
    labels = {"topic": topic, "type": Step.type}
    assert sample("aegis_msg_consumed_total", {**labels, "outcome": "ok"}) == len(events) - 1
    assert sample("aegis_msg_dead_lettered_total", {**labels, "reason": "exhausted"}) == 1
    assert sample("aegis_msg_handler_failures_total", labels) == 6  # 2 flaky + 4 broken


async def test_a_plain_exception_hands_the_batch_over_one_event_at_a_time(
    env: MsgEnv, make_collector: Callable[[], Collector]
) -> None:
    """Which event failed is unknown: each is handled alone, and only the bad one is dead."""
    topic = env.topic("plain")
    publisher = env.publisher(topic=topic)
    subscriber = env.subscriber()
    done = make_collector()
    bad_calls = make_collector()
    sizes: list[int] = []

    @subscriber.on_batch(Step, topic=topic)
    async def save(events: list[Step]) -> None:
        sizes.append(len(events))
        if any(event.data.key == "bad" for event in events):
            bad_calls.add(len(events))
            raise RuntimeError("the bulk insert failed")
        for event in events:
            done.add((event.data.key, event.data.seq))

    events = steps(["good", "other"], 3)
    bad = Step(data=StepData(key="bad", seq=0))
    events.insert(2, bad)
    await publisher.publish_batch(events)
    async with subscriber:
        seen = await done.wait(6)
        await bad_calls.wait(5)  # the batch, 3 times alone in process, 1 from the retry topic
        (dead,) = await env.read(f"{topic}.DLT", 1)
    assert in_order_per_key(seen, ["good", "other"]) == {"good": [0, 1, 2], "other": [0, 1, 2]}
    assert header(dead, "kafka_dlt-exception-fqcn") == b"RuntimeError"
    assert header(dead, "ce_id") == bad.id.encode()
    assert sizes[0] == len(events)
    assert set(sizes[1:]) == {1}
    assert bad_calls.items == [len(events), 1, 1, 1, 1]


async def test_a_not_retryable_cause_goes_to_the_dead_letters_after_one_call(
    env: MsgEnv, collector: Collector
) -> None:
    topic = env.topic("refused")
    publisher = env.publisher(topic=topic)
    subscriber = env.subscriber()
    calls = 0

    @subscriber.on_batch(Step, topic=topic)
    async def check(events: list[Step]) -> None:
        nonlocal calls
        calls += 1
        for index, event in enumerate(events):
            if event.data.seq == 0:
                raise BatchFailedError(index) from InvalidInputError("seq 0 is not allowed")
            collector.add(event.data.seq)

    await publisher.publish_batch(steps(["only"], 3))
    async with subscriber:
        assert await collector.wait(2) == [1, 2]
        (dead,) = await env.read(f"{topic}.DLT", 1)
    assert header(dead, "kafka_dlt-exception-message") == b"seq 0 is not allowed"
    assert int.from_bytes(header(dead, "retry_topic-attempts"), "big") == 1
    assert calls == 2  # the batch, then the events after the refused one


async def test_batch_and_event_handlers_of_one_topic_keep_their_order(
    env: MsgEnv, collector: Collector
) -> None:
    """Events of a per-event handler between batch events run in their place."""

    class Note(Event[StepData]):
        type = "test.batch.note"
        key_field = "key"

    topic = env.topic("mixed")
    publisher = env.publisher(topic=topic)
    subscriber = env.subscriber()

    @subscriber.on_batch(Step, topic=topic)
    async def on_steps(events: list[Step]) -> None:
        for event in events:
            collector.add(("step", event.data.seq))

    @subscriber.on(Note, topic=topic)
    async def on_note(event: Note) -> None:
        await asyncio.sleep(0)
        collector.add(("note", event.data.seq))

    sequence: list[Event[Any]] = []
    for seq in range(8):
        data = StepData(key="k", seq=seq)
        sequence.append(Note(data=data) if seq % 3 == 2 else Step(data=data))
    await publisher.publish_batch(sequence)
    async with subscriber:
        seen = await collector.wait(len(sequence))
    assert [seq for _, seq in seen] == list(range(8))
    assert [kind for kind, seq in seen if seq % 3 == 2] == ["note", "note"]


async def test_a_batch_handler_needs_a_size_of_at_least_one(env: MsgEnv) -> None:
    with pytest.raises(ConfigurationError, match="max_size"):
        env.subscriber().on_batch(Step, topic="t", max_size=0)

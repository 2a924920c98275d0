"""End-to-end behaviour, run on the in-memory transport and on a real Kafka-protocol broker."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
from pydantic import BaseModel

from aegis.core.context import request_context
from aegis.msg import (
    Event,
    EventRegistry,
    OutgoingRecord,
)

if TYPE_CHECKING:
    from conftest import Collector, MsgEnv

pytestmark = pytest.mark.anyio


class UserData(BaseModel):
    user_id: str
    email: str


class UserCreated(Event[UserData]):
    type = "test.user.created"
    version = 1
    key_field = "user_id"


class StepData(BaseModel):
    key: str
    seq: int


class Step(Event[StepData]):
    type = "test.step"
    key_field = "key"


class PaymentData(BaseModel):
    payment_id: str
    amount_cents: int


class PaymentV1(Event[dict[str, Any]]):
    type = "test.payment.made"
    version = 1


class PaymentMade(Event[PaymentData]):
    type = "test.payment.made"
    version = 2


def header(message: Any, name: str) -> bytes:
    values = [value for key, value in message.headers() or [] if key == name]
    assert values, f"no {name} header"
    return values[-1]  # type: ignore[no-any-return]


async def test_typed_round_trip_fills_the_envelope_and_batch_reports_each_event(
    env: MsgEnv, collector: Collector
) -> None:
    topic = env.topic("users", partitions=3)
    publisher = env.publisher(source="user-service", topic=topic)
    subscriber = env.subscriber()

    @subscriber.on(UserCreated, topic=topic)
    async def on_created(event: UserCreated) -> None:
        collector.add(event)

    first = UserCreated(data=UserData(user_id="u-1", email="kim@example.com"))
    with request_context(correlation_id="corr-1"):
        result = await publisher.publish(first)
        batch = [
            UserCreated(data=UserData(user_id=f"u-{i}", email=f"{i}@example.com"), subject="s")
            for i in range(2, 12)
        ]
        results = await publisher.publish_batch(batch)
    assert result.ok
    assert (result.event_id, result.topic) == (first.id, topic)
    assert [r.event_id for r in results] == [e.id for e in batch]
    assert all(r.ok and r.offset >= 0 for r in results)

    async with subscriber:
        received = await collector.wait(11)
    by_id = {event.id: event for event in received}
    assert set(by_id) == {first.id, *(e.id for e in batch)}
    got = by_id[first.id]
    assert isinstance(got, UserCreated)
    assert got.data == first.data
    assert got.time == first.time
    assert got.source == "user-service"
    assert got.correlationid == "corr-1"
    assert by_id[batch[0].id].subject == "s"

    (raw,) = [m for m in await env.read(topic, 11) if header(m, "ce_id") == first.id.encode()]
    assert raw.key() == b"u-1"
    assert json.loads(raw.value() or b"") == {"user_id": "u-1", "email": "kim@example.com"}
    assert header(raw, "content-type") == b"application/json"
    assert header(raw, "ce_specversion") == b"1.0"
    assert header(raw, "ce_type") == b"test.user.created"
    assert header(raw, "ce_schemaversion") == b"1"


async def test_structured_mode_round_trips_with_the_whole_envelope_in_the_body(
    env: MsgEnv, collector: Collector
) -> None:
    topic = env.topic("structured")
    publisher = env.publisher(source="svc", mode="structured")
    subscriber = env.subscriber()

    @subscriber.on(UserCreated, topic=topic)
    async def on_created(event: UserCreated) -> None:
        collector.add(event)

    event = UserCreated(data=UserData(user_id="u-9", email="s@example.com"))
    await publisher.publish(event, topic=topic)
    (raw,) = await env.read(topic, 1)
    assert header(raw, "content-type") == b"application/cloudevents+json"
    body = json.loads(raw.value() or b"")
    assert body["type"] == "test.user.created"
    assert body["id"] == event.id
    assert body["data"] == {"user_id": "u-9", "email": "s@example.com"}
    async with subscriber:
        (got,) = await collector.wait(1)
    # traceparent is on the wire only when a tracer provider records spans (another package's
    # tests may have installed the OpenTelemetry SDK globally); either way it must come back.
    wire = {"source": "svc", "correlationid": event.id, "traceparent": body.get("traceparent")}
    assert got == event.model_copy(update=wire)


async def test_events_of_one_key_stay_in_order_while_keys_run_concurrently(
    env: MsgEnv, collector: Collector
) -> None:
    topic = env.topic("steps", partitions=3)
    publisher = env.publisher(topic=topic)
    subscriber = env.subscriber(concurrency="key")
    running = 0
    most_running = 0

    @subscriber.on(Step, topic=topic)
    async def on_step(event: Step) -> None:
        nonlocal running, most_running
        running += 1
        most_running = max(most_running, running)
        await asyncio.sleep(random.random() / 500)  # noqa: S311 - shuffles finishing order
        running -= 1
        collector.add((event.data.key, event.data.seq))

    keys = [f"k{i}" for i in range(8)]
    events = [Step(data=StepData(key=key, seq=seq)) for seq in range(15) for key in keys]
    assert all(r.ok for r in await publisher.publish_batch(events))
    async with subscriber:
        seen = await collector.wait(len(events))
    for key in keys:
        assert [seq for k, seq in seen if k == key] == list(range(15))
    assert most_running > 1


async def test_failing_handler_is_retried_in_process_then_through_retry_topic_then_dead_lettered(
    env: MsgEnv, make_collector: Callable[[], Collector]
) -> None:
    topic = env.topic("payments")
    publisher = env.publisher(topic=topic)
    subscriber = env.subscriber()
    calls: dict[str, int] = {}
    done = make_collector()
    gave_up = make_collector()

    @subscriber.on(PaymentMade, topic=topic)
    async def on_payment(event: PaymentMade) -> None:
        calls[event.data.payment_id] = calls.get(event.data.payment_id, 0) + 1
        if event.data.payment_id == "flaky" and calls["flaky"] <= 2:
            raise ConnectionError("ledger unavailable")
        if event.data.payment_id == "broken":
            gave_up.add(calls["broken"])
            raise ValueError(f"cannot book {event.data.amount_cents}")
        done.add(event.data.payment_id)

    flaky = PaymentMade(data=PaymentData(payment_id="flaky", amount_cents=100))
    broken = PaymentMade(data=PaymentData(payment_id="broken", amount_cents=-1))
    await publisher.publish_batch([flaky, broken])
    async with subscriber:
        assert await done.wait(1) == ["flaky"]
        await gave_up.wait(4)  # 3 in process, 1 from the retry topic
        (dead,) = await env.read(f"{topic}.DLT", 1)
    assert calls == {"flaky": 3, "broken": 4}
    assert header(dead, "ce_id") == broken.id.encode()
    assert header(dead, "kafka_dlt-original-topic") == topic.encode()
    assert int.from_bytes(header(dead, "kafka_dlt-original-offset"), "big") == 1
    assert int.from_bytes(header(dead, "kafka_dlt-original-partition"), "big") == 0
    assert header(dead, "kafka_dlt-original-consumer-group") == env.group_id.encode()
    assert header(dead, "kafka_dlt-exception-fqcn") == b"ValueError"
    assert header(dead, "kafka_dlt-exception-message") == b"cannot book -1"
    assert b"on_payment" in header(dead, "kafka_dlt-exception-stacktrace")
    assert int.from_bytes(header(dead, "retry_topic-attempts"), "big") == 4
    (retried,) = await env.read(f"{topic}-retry-200", 1)
    assert int.from_bytes(header(retried, "retry_topic-attempts"), "big") == 3
    sample = env.metrics.get_sample_value
    labels = {"topic": topic, "type": "test.payment.made"}
    assert sample("aegis_msg_handler_failures_total", labels) == 6
    assert sample("aegis_msg_dead_lettered_total", {**labels, "reason": "exhausted"}) == 1
    assert sample("aegis_msg_retries_total", {**labels, "stage": "topic"}) == 1
    assert sample("aegis_msg_consumed_total", {**labels, "outcome": "ok"}) == 1


async def test_poison_messages_go_straight_to_the_dead_letter_topic_and_consuming_goes_on(
    env: MsgEnv, collector: Collector
) -> None:
    topic = env.topic("poison")
    subscriber = env.subscriber()

    @subscriber.on(PaymentMade, topic=topic)
    async def on_payment(event: PaymentMade) -> None:
        collector.add(event.data.payment_id)

    def raw(value: bytes, version: bytes = b"2", **extra: bytes) -> OutgoingRecord:
        headers = [
            ("ce_type", b"test.payment.made"),
            ("ce_id", b"id-" + version),
            ("ce_source", b"t"),
            ("ce_schemaversion", version),
        ]
        return OutgoingRecord(topic, value, None, headers + list(extra.items()))

    good = json.dumps({"payment_id": "ok", "amount_cents": 1}).encode()
    await env.transport.send_batch(
        [
            raw(b"{not json"),
            raw(json.dumps({"payment_id": "p"}).encode()),  # amount_cents missing
            raw(good, version=b"3"),  # a newer major than the model knows
            OutgoingRecord(topic, b"no headers at all", None, []),
            raw(good),
        ]
    )
    async with subscriber:
        assert await collector.wait(1) == ["ok"]
        dead = await env.read(f"{topic}.DLT", 4)
    reasons = [header(m, "kafka_dlt-exception-message").decode() for m in dead]
    assert "Invalid JSON" in reasons[0]
    assert "amount_cents: Field required" in reasons[1]
    assert "schema version 3 is newer" in reasons[2]
    assert "no ce_type header" in reasons[3]
    assert [header(m, "kafka_dlt-exception-fqcn") for m in dead] == [
        b"aegis.msg._errors.InvalidEventError",
        b"aegis.msg._errors.InvalidEventError",
        b"aegis.msg._errors.UnsupportedVersionError",
        b"aegis.msg._errors.InvalidEventError",
    ]
    assert [int.from_bytes(header(m, "kafka_dlt-original-offset"), "big") for m in dead] == [
        0,
        1,
        2,
        3,
    ]
    assert dead[0].value() == b"{not json"
    assert (
        env.metrics.get_sample_value(
            "aegis_msg_dead_lettered_total",
            {"topic": topic, "type": "test.payment.made", "reason": "unsupported_version"},
        )
        == 1
    )


async def test_v1_event_reaches_the_v2_handler_through_an_upcaster(
    env: MsgEnv, collector: Collector
) -> None:
    topic = env.topic("upcast")
    old_service = env.publisher(topic=topic, registry=EventRegistry())
    subscriber = env.subscriber()

    @env.registry.upcaster(PaymentMade, from_version=1)
    def dollars_to_cents(data: dict[str, Any]) -> dict[str, Any]:
        return {"payment_id": data["id"], "amount_cents": round(data["amount"] * 100)}

    @subscriber.on(PaymentMade, topic=topic)
    async def on_payment(event: PaymentMade) -> None:
        collector.add(event)

    old = PaymentV1(data={"id": "p-1", "amount": 12.5})
    await old_service.publish(old)
    async with subscriber:
        (got,) = await collector.wait(1)
    assert isinstance(got, PaymentMade)
    assert got.id == old.id
    assert got.data == PaymentData(payment_id="p-1", amount_cents=1250)


async def test_a_stopped_subscriber_resumes_from_its_committed_offsets(
    env: MsgEnv, make_collector: Callable[[], Collector]
) -> None:
    topic = env.topic("resume")
    publisher = env.publisher(topic=topic)
    first_run, second_run = make_collector(), make_collector()
    await publisher.publish_batch([Step(data=StepData(key="a", seq=i)) for i in range(5)])

    first = env.subscriber()
    first.on(Step, topic=topic)(lambda event: _record(first_run, event))
    async with first:
        await first_run.wait(5)
    await publisher.publish_batch([Step(data=StepData(key="a", seq=i)) for i in range(5, 8)])
    second = env.subscriber()
    second.on(Step, topic=topic)(lambda event: _record(second_run, event))
    async with second:
        assert await second_run.wait(3) == [5, 6, 7]


async def _record(collector: Collector, event: Step) -> None:
    collector.add(event.data.seq)

"""Kafka publish and consume throughput: aegis.msg against raw confluent-kafka and FastStream.

One process, one broker (an embedded Tansu from aegis-testing unless ``--bootstrap`` names one),
a fresh 3-partition topic per variant and round, events of ~160 bytes of JSON keyed by
``user_id % 100``. Publishing (each timed from the first produce to the last delivery report):

* ``raw``: confluent-kafka ``produce()`` of pre-serialized bytes and keys, then ``flush()``
  (the 1.00 of the ratios);
* ``hand-written``: a loop producing the same bytes and headers as aegis: ``model_dump_json()``
  of the data, the CloudEvents binary-mode headers built per event, ``produce()``, ``flush()``;
* ``hand-written, per-event results``: the same loop with a delivery callback per message that
  records its partition and offset, the per-event result ``publish_batch`` returns;
* ``aegis publish_batch``: ``EventPublisher.publish_batch(UserCreated(data=d) for d in datas)``
  (events made as they are sent, as the hand-written loop makes its headers), per-event results
  awaited;
* ``aegis publish_batch, errors only``: the same with ``errors_only=True`` (failures reported,
  no report per delivered event), against the hand-written loop that keeps no results;
* ``... events prebuilt``: both given a list of events made beforehand (not timed);
* ``faststream``: FastStream's confluent broker, ``publish(data, headers=..., no_confirm=True)``
  per event, then every delivery future awaited (fewer events: it is slow).

All clients use the same producer settings (idempotence, acks=all, linger 5 ms, a local queue
of 1,000,000 messages). Consuming the same 100,000 events (each timed from the first message to
the last, so the group join is not counted): ``raw consume()`` batches of 500 touching each
value, the same loop validating each event with pydantic by hand (header dict, data from JSON,
the envelope around it: the floor of any typed consumer), and an ``EventSubscriber`` with a
typed handler, then with a batch handler (``on_batch``, its default ``max_size``), both with
header decoding, pydantic validation, metrics and offset commits.

Each table also shows the CPU time of this process per event (librdkafka's threads included):
on a shared machine it moves less than events/s, which also depends on the broker's share of the
cores. So where it can, the script keeps the broker it started on a core of its own and itself
on the others (Linux's CPU affinity, every thread of both): with the two competing for the same
cores, identical rounds of the consume part moved by up to 30%.

Memory of one publish of ``--events`` events (issue #14), each variant in a fresh interpreter
that holds only its own input: the growth of the peak RSS (``VmHWM``, librdkafka's queues
included) over the RSS before publishing, and the tracemalloc peak (Python allocations only) of a
second publish, for ``aegis publish_batch`` (events built from the data inside the measurement,
as in the throughput case, and prebuilt), the hand-written loop and raw ``produce()``.

Usage: .venv/bin/python benchmarks/msg_publish.py [--events 100000] [--rounds 3] [--no-memory]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import statistics
import subprocess
import sys
import time
import tracemalloc
import uuid
from array import array
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from _results import Results, add_json_argument, figure
from confluent_kafka import Consumer, Message, Producer
from prometheus_client import CollectorRegistry
from pydantic import BaseModel

from aegis.core.context import request_context
from aegis.core.utils.datetime import format_datetime
from aegis.msg import (
    BatchResult,
    DeliveryResult,
    Event,
    EventPublisher,
    EventRegistry,
    EventSubscriber,
    KafkaSettings,
    KafkaTransport,
)
from aegis.msg._kafka_producer import PRODUCER_DEFAULTS
from aegis.testing import create_topics, start_server

SOURCE = "bench-service"
CORRELATION = "corr-0001"
JOIN = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 500}


class UserData(BaseModel):
    """~160 bytes of JSON."""

    user_id: int
    email: str
    name: str
    plan: str
    country: str
    active: bool
    score: float


class UserCreated(Event[UserData]):
    """The benchmark's event."""

    type = "aegis.bench.user.created"
    version = 2
    key_field = "user_id"


def make_data(count: int) -> list[UserData]:
    """``count`` payloads keyed by ``user_id % 100``."""
    return [
        UserData(
            user_id=i % 100,
            email=f"user{i:07d}@example.com",
            name=f"User Number {i:07d}",
            plan="professional-annual",
            country="KR",
            active=True,
            score=i / 7,
        )
        for i in range(count)
    ]


def make_events(count: int) -> list[UserCreated]:
    """``count`` events keyed by ``user_id % 100``."""
    return [UserCreated(data=data) for data in make_data(count)]


def new_topic(bootstrap: str) -> str:
    """A fresh 3-partition topic."""
    topic = f"bench-{uuid.uuid4().hex[:10]}"
    create_topics(bootstrap, [topic], partitions=3)
    return topic


QUEUE = {"queue.buffering.max.messages": 1_000_000}


def producer_config(bootstrap: str) -> dict[str, Any]:
    """The settings every publishing variant uses."""
    return {**PRODUCER_DEFAULTS, "bootstrap.servers": bootstrap, **QUEUE}


def raw(bootstrap: str, events: list[UserCreated]) -> Callable[[str], Awaitable[int]]:
    """Pre-serialized bytes and keys, no headers."""
    producer = Producer(producer_config(bootstrap))
    payload = [(e.data.model_dump_json().encode(), str(e.data.user_id).encode()) for e in events]

    async def run(topic: str) -> int:
        produce = producer.produce
        for value, key in payload:
            produce(topic, value, key)
        producer.flush(60)
        return len(payload)

    return run


def hand_written(bootstrap: str, datas: list[UserData]) -> Callable[[str], Awaitable[int]]:
    """What a careful user writes by hand to send the same headers and bytes as aegis."""
    producer = Producer(producer_config(bootstrap))
    type_bytes = UserCreated.type.encode()

    async def run(topic: str) -> int:
        produce = producer.produce
        for data in datas:
            now = datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
            headers: list[tuple[str, str | bytes | None]] = [
                ("content-type", b"application/json"),
                ("ce_specversion", b"1.0"),
                ("ce_type", type_bytes),
                ("ce_schemaversion", b"2"),
                ("ce_id", str(uuid.uuid4()).encode()),
                ("ce_source", SOURCE.encode()),
                ("ce_time", now.encode()),
                ("ce_correlationid", CORRELATION.encode()),
            ]
            value = data.model_dump_json().encode()
            produce(topic, value, str(data.user_id).encode(), headers=headers)
        producer.flush(60)
        return len(datas)

    return run


def hand_written_with_results(
    bootstrap: str, datas: list[UserData]
) -> Callable[[str], Awaitable[int]]:
    """The hand-written loop that also keeps a result per event, as ``publish_batch`` does.

    One delivery callback per message writing the partition and offset (or the error) into
    arrays: what per-event results cost a careful user of confluent-kafka.
    """
    producer = Producer(producer_config(bootstrap))
    type_bytes = UserCreated.type.encode()

    async def run(topic: str) -> int:
        partitions = array("i", [-1]) * len(datas)
        offsets = array("q", [-1]) * len(datas)
        errors: dict[int, Any] = {}

        def delivered(index: int, error: Any, message: Any) -> None:
            if error is None:
                partitions[index], offsets[index] = message.partition(), message.offset()
            else:
                errors[index] = error

        produce = producer.produce
        for index, data in enumerate(datas):
            now = datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
            headers: list[tuple[str, str | bytes | None]] = [
                ("content-type", b"application/json"),
                ("ce_specversion", b"1.0"),
                ("ce_type", type_bytes),
                ("ce_schemaversion", b"2"),
                ("ce_id", str(uuid.uuid4()).encode()),
                ("ce_source", SOURCE.encode()),
                ("ce_time", now.encode()),
                ("ce_correlationid", CORRELATION.encode()),
            ]
            value = data.model_dump_json().encode()
            produce(
                topic,
                value,
                str(data.user_id).encode(),
                headers=headers,
                on_delivery=partial(delivered, index),
            )
            if index % 1000 == 0:
                producer.poll(0)
        producer.flush(60)
        assert not errors
        return len(datas)

    return run


def hand_written_events(
    bootstrap: str, events: list[UserCreated]
) -> Callable[[str], Awaitable[int]]:
    """The hand-written loop given events that already carry an id and a time."""
    producer = Producer(producer_config(bootstrap))

    async def run(topic: str) -> int:
        produce = producer.produce
        for event in events:
            value = event.data.model_dump_json().encode()
            headers: list[tuple[str, str | bytes | None]] = [
                ("content-type", b"application/json"),
                ("ce_specversion", event.specversion.encode()),
                ("ce_type", event.type.encode()),
                ("ce_schemaversion", str(event.version).encode()),
                ("ce_id", event.id.encode()),
                ("ce_source", SOURCE.encode()),
                ("ce_time", format_datetime(event.time).encode()),
                ("ce_correlationid", CORRELATION.encode()),
            ]
            produce(topic, value, str(event.data.user_id).encode(), headers=headers)
        producer.flush(60)
        return len(events)

    return run


def aegis_batch(kafka: KafkaTransport, datas: list[UserData]) -> Callable[[str], Awaitable[int]]:
    """``EventPublisher.publish_batch`` of events made as it goes, like the hand-written loop."""
    publisher = EventPublisher(
        kafka, source=SOURCE, registry=EventRegistry(), metrics_registry=CollectorRegistry()
    )

    async def run(topic: str) -> int:
        with request_context(correlation_id=CORRELATION):
            events = (UserCreated(data=data) for data in datas)
            results = await publisher.publish_batch(events, topic=topic)
        assert not _failed(results)
        return len(results)

    return run


def aegis_batch_errors(
    kafka: KafkaTransport, datas: list[UserData]
) -> Callable[[str], Awaitable[int]]:
    """``publish_batch(..., errors_only=True)``: failures reported, no report per delivery."""
    publisher = EventPublisher(
        kafka, source=SOURCE, registry=EventRegistry(), metrics_registry=CollectorRegistry()
    )

    async def run(topic: str) -> int:
        with request_context(correlation_id=CORRELATION):
            events = (UserCreated(data=data) for data in datas)
            results = await publisher.publish_batch(events, topic=topic, errors_only=True)
        assert not _failed(results)
        return len(results)

    return run


def aegis_batch_events(
    kafka: KafkaTransport, events: list[UserCreated]
) -> Callable[[str], Awaitable[int]]:
    """``EventPublisher.publish_batch`` of events built beforehand."""
    publisher = EventPublisher(
        kafka, source=SOURCE, registry=EventRegistry(), metrics_registry=CollectorRegistry()
    )

    async def run(topic: str) -> int:
        with request_context(correlation_id=CORRELATION):
            results = await publisher.publish_batch(events, topic=topic)
        assert not _failed(results)
        return len(results)

    return run


def _failed(results: Sequence[DeliveryResult]) -> list[DeliveryResult]:
    if isinstance(results, BatchResult):
        return results.failed
    return [result for result in results if not result.ok]


def faststream(broker: Any, datas: list[UserData]) -> Callable[[str], Awaitable[int]]:
    """FastStream's confluent publisher with the same headers, delivery futures awaited."""

    async def run(topic: str) -> int:
        futures = []
        for data in datas:
            now = datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
            headers = {
                "ce_specversion": "1.0",
                "ce_type": UserCreated.type,
                "ce_schemaversion": "2",
                "ce_id": str(uuid.uuid4()),
                "ce_source": SOURCE,
                "ce_time": now,
                "ce_correlationid": CORRELATION,
            }
            futures.append(
                await broker.publish(
                    data, topic, key=str(data.user_id), headers=headers, no_confirm=True
                )
            )
        await asyncio.gather(*futures)
        return len(datas)

    return run


CPU_US: dict[str, list[float]] = {}
"""CPU µs per event of each variant and round (this process, librdkafka's threads included):
steadier than events/s on a shared machine, where the broker competes for the same cores."""


async def timed(name: str, run: Callable[[str], Awaitable[int]], bootstrap: str) -> float:
    """Events per second of one run on a fresh topic; its CPU time goes to ``CPU_US``."""
    topic = new_topic(bootstrap)
    cpu = time.process_time()
    started = time.perf_counter()
    count = await run(topic)
    elapsed = time.perf_counter() - started
    CPU_US.setdefault(name, []).append((time.process_time() - cpu) / count * 1e6)
    return count / elapsed


async def publishing(bootstrap: str, count: int, rounds: int) -> dict[str, list[float]]:
    """Every publishing variant, ``rounds`` times, the order rotated per round."""
    datas = make_data(count)
    events = make_events(count)
    peer_datas = datas[: max(count // 10, 1000)]
    results: dict[str, list[float]] = {}
    async with KafkaTransport(KafkaSettings(bootstrap_servers=bootstrap, producer=QUEUE)) as kafka:
        variants = {
            "raw produce (pre-serialized)": raw(bootstrap, events),
            "hand-written loop": hand_written(bootstrap, datas),
            "hand-written loop, per-event results": hand_written_with_results(bootstrap, datas),
            "aegis publish_batch": aegis_batch(kafka, datas),
            "aegis publish_batch, errors only": aegis_batch_errors(kafka, datas),
            "hand-written loop, events prebuilt": hand_written_events(bootstrap, events),
            "aegis publish_batch, events prebuilt": aegis_batch_events(kafka, events),
        }
        broker = await _faststream_broker(bootstrap)
        if broker is not None:
            variants[f"faststream publish ({len(peer_datas)} events)"] = faststream(
                broker, peer_datas
            )
        warm = new_topic(bootstrap)
        for run in variants.values():  # connections, metadata, first-call costs
            await run(warm)
        names = list(variants)
        for round_number in range(rounds):
            shift = round_number % len(names)
            for name in names[shift:] + names[:shift]:
                results.setdefault(name, []).append(await timed(name, variants[name], bootstrap))
        if broker is not None:
            await broker.stop()
    return results


async def _faststream_broker(bootstrap: str) -> Any:
    try:
        from faststream.confluent import KafkaBroker
    except ImportError:
        print("faststream[confluent] is not installed: its row is left out")
        return None
    broker = KafkaBroker(bootstrap, enable_idempotence=True, acks="all", linger_ms=5)
    await broker.start()
    return broker


@contextlib.contextmanager
def broker_apart(broker_pid: int | None) -> Iterator[str]:
    """Run the broker on the last core and this process on the others, then undo it.

    Yields what was done, for the report. Nothing is pinned without a broker of our own, on
    one core, or where CPU affinity cannot be set (not Linux).
    """
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if broker_pid is None or len(cores) < 2:
        yield "the broker and this process share the cores"
        return
    broker_core, own = {cores[-1]}, set(cores[:-1])
    pinned = dict.fromkeys(_threads(os.getpid()), own)
    pinned.update(dict.fromkeys(_threads(broker_pid), broker_core))
    try:
        for thread, chosen in pinned.items():
            os.sched_setaffinity(thread, chosen)
    except OSError as exc:
        yield f"the broker and this process share the cores (pinning failed: {exc})"
        return
    try:
        yield f"broker on CPU {cores[-1]}, this process on CPU {','.join(map(str, cores[:-1]))}"
    finally:
        for thread in [*_threads(os.getpid()), *_threads(broker_pid)]:
            with contextlib.suppress(OSError):  # a thread that ended meanwhile
                os.sched_setaffinity(thread, set(cores))


def _threads(pid: int) -> list[int]:
    """The thread ids of process ``pid`` (each has its own CPU affinity on Linux)."""
    return [int(task.name) for task in Path(f"/proc/{pid}/task").iterdir()]


async def consuming(bootstrap: str, count: int, rounds: int) -> dict[str, list[float]]:
    """Raw batched ``consume()`` against a typed ``EventSubscriber`` on the same messages."""
    topic = new_topic(bootstrap)
    results: dict[str, list[float]] = {}
    async with KafkaTransport(KafkaSettings(bootstrap_servers=bootstrap, consumer=JOIN)) as kafka:
        publisher = EventPublisher(kafka, source=SOURCE, registry=EventRegistry())
        for start in range(0, count, 20_000):
            await publisher.publish_batch(make_events(min(20_000, count - start)), topic=topic)
        for round_number in range(rounds):
            order = [_raw_consume, _hand_typed_consume, _aegis_consume, _aegis_batch_consume]
            if round_number % 2:
                order.reverse()
            for variant in order:
                cpu = time.process_time()
                name, rate = await variant(kafka, bootstrap, topic, count)
                CPU_US.setdefault(name, []).append((time.process_time() - cpu) / count * 1e6)
                results.setdefault(name, []).append(rate)
    return results


def consume_all(
    bootstrap: str, topic: str, count: int, handle_batch: Callable[[list[Message]], int]
) -> float:
    """Messages per second of a fresh group reading ``count`` messages in batches of 500.

    ``handle_batch`` does the per-message work and returns how many messages it took; the
    clock starts at the first message, so the group join is not counted.
    """
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            **JOIN,
        }
    )
    consumer.subscribe([topic])
    seen = 0
    started = 0.0
    while seen < count:
        batch = consumer.consume(500, 1.0)
        if batch and not started:
            started = time.perf_counter()
        seen += handle_batch(batch)
    elapsed = time.perf_counter() - started
    consumer.commit(asynchronous=False)
    consumer.close()
    return count / elapsed


async def _raw_consume(
    kafka: KafkaTransport, bootstrap: str, topic: str, count: int
) -> tuple[str, float]:
    def touch(batch: list[Message]) -> int:
        seen = size = 0
        for message in batch:
            if message.error() is None:
                size += len(message.value() or b"")
                seen += 1
        return seen

    rate = await asyncio.to_thread(consume_all, bootstrap, topic, count, touch)
    return "raw consume() batches of 500", rate


async def _hand_typed_consume(
    kafka: KafkaTransport, bootstrap: str, topic: str, count: int
) -> tuple[str, float]:
    """Raw batched ``consume()`` that also validates each event with pydantic, by hand.

    The floor of any typed consumer: the header dict, the data validated from JSON and the
    envelope validated around it; no handler, metrics or commits.
    """
    validate_data = UserData.__pydantic_validator__.validate_json
    validate_event = UserCreated.__pydantic_validator__.validate_python

    def validate(batch: list[Message]) -> int:
        seen = 0
        for message in batch:
            if message.error() is None:
                headers = dict(message.headers() or [])
                validate_event(
                    {
                        "id": headers["ce_id"],
                        "source": headers["ce_source"],
                        "time": headers["ce_time"],
                        "correlationid": headers.get("ce_correlationid"),
                        "data": validate_data(message.value() or b""),
                    }
                )
                seen += 1
        return seen

    rate = await asyncio.to_thread(consume_all, bootstrap, topic, count, validate)
    return "hand-written typed consume() (pydantic)", rate


async def _aegis_consume(
    kafka: KafkaTransport, bootstrap: str, topic: str, count: int
) -> tuple[str, float]:
    subscriber = EventSubscriber(
        kafka,
        group_id=f"bench-aegis-{uuid.uuid4().hex[:8]}",
        registry=EventRegistry(),
        metrics_registry=CollectorRegistry(),
        max_in_flight=5000,
    )
    done = asyncio.Event()
    seen = 0
    started = 0.0
    finished = 0.0

    @subscriber.on(UserCreated, topic=topic)
    async def handle(event: UserCreated) -> None:
        nonlocal seen, started, finished
        if not seen:
            started = time.perf_counter()
        seen += 1
        if seen == count:
            finished = time.perf_counter()
            done.set()

    async with subscriber:
        await done.wait()
    return "aegis EventSubscriber, typed handler", count / (finished - started)


async def _aegis_batch_consume(
    kafka: KafkaTransport, bootstrap: str, topic: str, count: int
) -> tuple[str, float]:
    subscriber = EventSubscriber(
        kafka,
        group_id=f"bench-aegis-batch-{uuid.uuid4().hex[:8]}",
        registry=EventRegistry(),
        metrics_registry=CollectorRegistry(),
        max_in_flight=5000,
    )
    done = asyncio.Event()
    seen = 0
    started = 0.0
    finished = 0.0

    @subscriber.on_batch(UserCreated, topic=topic)
    async def handle(events: list[UserCreated]) -> None:
        nonlocal seen, started, finished
        if not seen:
            started = time.perf_counter()
        seen += len(events)
        if seen >= count:
            finished = time.perf_counter()
            done.set()

    async with subscriber:
        await done.wait()
    return "aegis EventSubscriber, batch handler", count / (finished - started)


MEMORY_VARIANTS = {
    "aegis": "aegis publish_batch",
    "aegis-prebuilt": "aegis publish_batch, events prebuilt",
    "hand": "hand-written loop",
    "raw": "raw produce (pre-serialized)",
}


def memory_status(field: str) -> int:
    """A memory figure of this process from /proc/self/status (``VmRSS``, ``VmHWM``), in KiB.

    ``VmHWM`` is the peak RSS of this program image; ``ru_maxrss`` is not used because Linux
    carries it over from the forking parent across ``exec``.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def reset_peak_rss() -> None:
    """Start ``VmHWM`` again from the current RSS (Linux 4.0+); without it, it stays a peak."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


async def memory_child(variant: str, bootstrap: str, count: int) -> dict[str, float]:
    """Peak RSS growth and tracemalloc peak of publishing ``count`` events by ``variant``."""
    datas = make_data(count)

    def runner(kafka: KafkaTransport, datas: list[UserData]) -> Callable[[str], Awaitable[int]]:
        if variant == "aegis":
            return aegis_batch(kafka, datas)
        events = [UserCreated(data=data) for data in datas]
        if variant == "aegis-prebuilt":
            return aegis_batch_events(kafka, events)
        if variant == "hand":
            return hand_written(bootstrap, datas)
        return raw(bootstrap, events)

    async with KafkaTransport(KafkaSettings(bootstrap_servers=bootstrap)) as kafka:
        # A small warm-up (connections, metadata, first calls): ru_maxrss is a lifetime peak.
        await runner(kafka, datas[:1000])(new_topic(bootstrap))
        run = runner(kafka, datas)
        topics = [new_topic(bootstrap), new_topic(bootstrap)]
        gc.collect()
        reset_peak_rss()
        before = memory_status("VmRSS")
        await run(topics[0])
        peak = memory_status("VmHWM")
        gc.collect()
        tracemalloc.start()
        start = tracemalloc.get_traced_memory()[0]
        await run(topics[1])
        traced_peak = tracemalloc.get_traced_memory()[1] - start
        tracemalloc.stop()
    return {"rss_growth_mib": (peak - before) / 1024, "traced_peak_mib": traced_peak / 2**20}


def memory(bootstrap: str, count: int) -> dict[str, dict[str, float]]:
    """Every memory variant in a fresh interpreter of its own."""
    figures = {}
    for variant in MEMORY_VARIANTS:
        output = subprocess.run(
            [sys.executable, __file__, "--memory-child", variant, "--bootstrap", bootstrap,
             "--events", str(count)],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        figures[variant] = json.loads(output.splitlines()[-1])
    return figures


def report_memory(figures: dict[str, dict[str, float]], count: int) -> None:
    """Print the memory table."""
    print(f"\nMemory of publishing {count:,} events (fresh interpreter per variant)")
    print(f"{'variant':44} {'peak RSS growth MiB':>20} {'tracemalloc peak MiB':>21}")
    for variant, name in MEMORY_VARIANTS.items():
        values = figures[variant]
        print(f"{name:44} {values['rss_growth_mib']:20.1f} {values['traced_peak_mib']:21.1f}")


def report(title: str, results: dict[str, list[float]], baseline: str) -> None:
    """Medians, ranges and the ratio to ``baseline``'s median, and the CPU per event."""
    base = statistics.median(results[baseline])
    print(f"\n{title}")
    print(
        f"{'variant':44} {'events/s median':>16} {'min-max':>21} {'x ' + baseline[:12]:>16}"
        f" {'CPU µs/event':>13}"
    )
    for name, rates in results.items():
        median = statistics.median(rates)
        spread = f"{min(rates):,.0f}-{max(rates):,.0f}"
        cpu = statistics.median(CPU_US[name]) if name in CPU_US else float("nan")
        print(f"{name:44} {median:16,.0f} {spread:>21} {median / base:16.3f} {cpu:13.2f}")


def main() -> None:
    """Parse the arguments, start a broker if needed, run every part, print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--consume-rounds",
        type=int,
        help="rounds of the consume part (default: --rounds); its ratios move more",
    )
    parser.add_argument("--bootstrap", help="a running broker (default: start Tansu)")
    parser.add_argument("--no-memory", action="store_true", help="leave the memory part out")
    parser.add_argument("--memory-child", choices=list(MEMORY_VARIANTS), help=argparse.SUPPRESS)
    add_json_argument(parser)
    args = parser.parse_args()
    consume_rounds = args.consume_rounds or args.rounds
    if args.memory_child:
        figures = asyncio.run(memory_child(args.memory_child, args.bootstrap, args.events))
        print(json.dumps(figures))
        return
    published, consumed, memory_figures, placement = measure(args, consume_rounds)
    report(
        f"Publishing {args.events:,} events, {args.rounds} rounds",
        published,
        "raw produce (pre-serialized)",
    )
    hand = statistics.median(published["hand-written loop"])
    ours = statistics.median(published["aegis publish_batch"])
    print(f"aegis publish_batch / hand-written loop: {ours / hand:.2f}x")
    with_results = statistics.median(published["hand-written loop, per-event results"])
    print(f"aegis publish_batch / hand-written loop, per-event results: {ours / with_results:.2f}x")
    quiet = statistics.median(published["aegis publish_batch, errors only"])
    print(f"aegis publish_batch, errors only / hand-written loop: {quiet / hand:.2f}x")
    prebuilt = statistics.median(published["aegis publish_batch, events prebuilt"])
    hand_prebuilt = statistics.median(published["hand-written loop, events prebuilt"])
    print(f"same, events prebuilt: {prebuilt / hand_prebuilt:.2f}x")
    for name, rates in published.items():
        if name.startswith("faststream"):
            peer = statistics.median(rates)
            print(f"aegis publish_batch / {name}: {ours / peer:.1f}x")
            print(f"aegis publish_batch, errors only / {name}: {quiet / peer:.1f}x")
    report(
        f"Consuming {args.events:,} events, {consume_rounds} rounds",
        consumed,
        "raw consume() batches of 500",
    )
    typed = statistics.median(consumed["hand-written typed consume() (pydantic)"])
    raw_rate = statistics.median(consumed["raw consume() batches of 500"])
    aegis_rate = statistics.median(consumed["aegis EventSubscriber, typed handler"])
    batch_rate = statistics.median(consumed["aegis EventSubscriber, batch handler"])
    print(f"hand-written typed consume / raw consume(): {typed / raw_rate:.2f}x")
    print(f"aegis EventSubscriber / hand-written typed consume: {aegis_rate / typed:.2f}x")
    print(f"aegis batch handler / hand-written typed consume: {batch_rate / typed:.2f}x")
    if memory_figures is not None:
        report_memory(memory_figures, args.events)
    record(published, consumed, memory_figures, args.events, placement).write(args.json)


def measure(
    args: argparse.Namespace, consume_rounds: int
) -> tuple[dict[str, list[float]], dict[str, list[float]], dict[str, dict[str, float]] | None, str]:
    """Publishing, consuming and memory figures, and where the broker and this process ran."""
    server = None if args.bootstrap else start_server("kafka")
    bootstrap = args.bootstrap or (server.url if server else "")
    try:
        with broker_apart(server.pid if server else None) as placement:
            print(f"placement: {placement}")
            published = asyncio.run(publishing(bootstrap, args.events, args.rounds))
            consumed = asyncio.run(consuming(bootstrap, args.events, consume_rounds))
            memory_figures = None if args.no_memory else memory(bootstrap, args.events)
    finally:
        if server is not None:
            server.stop()
    return published, consumed, memory_figures, placement


CONSUME_VARIANTS = (
    "hand-written typed consume() (pydantic)",
    "aegis EventSubscriber, typed handler",
    "aegis EventSubscriber, batch handler",
)


def paired_row(consumed: dict[str, list[float]], name: str) -> list[str]:
    """``name``'s rate over the hand-written loop's, round by round, and its CPU per event.

    A round runs every variant once, one after the other, so a ratio within a round is less
    exposed to a machine whose speed drifts between rounds than a ratio of medians.
    """
    hand = consumed[CONSUME_VARIANTS[0]]
    ratios = [ours / theirs for ours, theirs in zip(consumed[name], hand, strict=True)]
    cpu = statistics.median(CPU_US[name]) if name in CPU_US else float("nan")
    return [
        name,
        ", ".join(f"{ratio:.2f}" for ratio in ratios),
        f"{statistics.median(ratios):.2f}",
        f"{cpu:.2f}",
    ]


def record(
    published: dict[str, list[float]],
    consumed: dict[str, list[float]],
    memory_figures: dict[str, dict[str, float]] | None,
    count: int,
    placement: str,
) -> Results:
    """The medians as --json cases: aegis against raw confluent-kafka and FastStream."""
    results = Results("aegis-msg", "msg_publish", ["confluent-kafka", "faststream", "pydantic"])

    def median(rates: dict[str, list[float]], name: str) -> dict[str, Any]:
        return figure(name, statistics.median(rates[name]))

    faststream = [median(published, name) for name in published if name.startswith("faststream")]

    results.case(
        "publish a batch",
        "events/s",
        aegis=median(published, "aegis publish_batch"),
        raw=median(published, "raw produce (pre-serialized)"),
        peers=[
            median(published, "hand-written loop, per-event results"),
            median(published, "hand-written loop"),
            *faststream,
        ],
        goal=">= 1.0x hand-written loop with per-event results, >= 8x FastStream",
    )
    results.case(
        "publish a batch, errors only",
        "events/s",
        aegis=median(published, "aegis publish_batch, errors only"),
        raw=median(published, "raw produce (pre-serialized)"),
        peers=[median(published, "hand-written loop"), *faststream],
        goal=">= 1.0x hand-written loop (no results)",
    )
    typed = median(consumed, "hand-written typed consume() (pydantic)")
    results.case(
        "consume",
        "events/s",
        aegis=median(consumed, "aegis EventSubscriber, typed handler"),
        raw=median(consumed, "raw consume() batches of 500"),
        peers=[typed],
        goal=">= 0.8x hand-written typed consume()",
    )
    results.case(
        "consume, batch handler",
        "events/s",
        aegis=median(consumed, "aegis EventSubscriber, batch handler"),
        raw=median(consumed, "raw consume() batches of 500"),
        peers=[typed],
        goal=">= 1.0x hand-written typed consume()",
    )
    results.table(
        "consume: each round's events/s against the hand-written loop's in the same round, "
        f"and CPU per event (the whole process, librdkafka's threads included); {placement}",
        ["variant", "ratio per round", "median ratio", "CPU µs/event (median)"],
        [paired_row(consumed, name) for name in CONSUME_VARIANTS],
    )
    if memory_figures is not None:
        results.table(
            f"Memory of publishing {count:,} events (fresh interpreter per variant)",
            ["variant", "peak RSS growth MiB", "tracemalloc peak MiB"],
            [
                [name, f"{memory_figures[variant]['rss_growth_mib']:.1f}",
                 f"{memory_figures[variant]['traced_peak_mib']:.1f}"]
                for variant, name in MEMORY_VARIANTS.items()
            ],
        )  # fmt: skip
        for key, name in [
            ("rss_growth_mib", f"peak RSS growth publishing {count:,} events"),
            ("traced_peak_mib", f"tracemalloc peak publishing {count:,} events"),
        ]:
            results.case(
                name,
                "MiB",
                aegis=figure(MEMORY_VARIANTS["aegis"], memory_figures["aegis"][key]),
                raw=figure(MEMORY_VARIANTS["raw"], memory_figures["raw"][key]),
                peers=[figure(MEMORY_VARIANTS["hand"], memory_figures["hand"][key])],
                higher_is_better=False,
            )
    return results


if __name__ == "__main__":
    main()

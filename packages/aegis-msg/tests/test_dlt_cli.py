"""``aegis-msg dlt`` against a real broker: list, show and replay dead letters a handler made."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import (
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaError,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient
from pydantic import BaseModel

from aegis.msg import (
    DeadLetters,
    DeadLetterSelection,
    Event,
    EventPublisher,
    EventRegistry,
    EventSubscriber,
    KafkaSettings,
    KafkaTransport,
    RetryPolicy,
)
from aegis.msg._cli import main
from aegis.msg._dlt_selection import OffsetRange
from aegis.testing import terminal_stderr, unique_name

pytestmark = pytest.mark.anyio

TopicFactory = Callable[..., str]
FAST_GROUP_JOIN = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 500}
# Two handler calls in process, no retry topics: a failing event is dead-lettered quickly.
FAIL_FAST = RetryPolicy(attempts=2, backoff=0.01, topic_delays=())


class OrderData(BaseModel):
    order_id: str
    total_cents: int


class OrderPlaced(Event[OrderData]):
    type = "test.dlt.order.placed"
    key_field = "order_id"


def read_all(
    bootstrap: str, topic: str, *, at_least: int = 0, deadline: float = 30.0
) -> list[Message]:
    """Every record of a one-partition topic, once at least ``at_least`` are there (no group)."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "unused", "enable.partition.eof": True}
    )
    try:
        end = time.monotonic() + deadline
        while True:
            consumer.assign([TopicPartition(topic, 0, 0)])
            found: list[Message] = []
            at_end = False
            while not at_end and time.monotonic() < end:
                for message in consumer.consume(100, 0.5):
                    error = message.error()
                    if error is None:
                        found.append(message)
                    elif error.code() == KafkaError._PARTITION_EOF:
                        at_end = True
            if len(found) >= at_least or time.monotonic() >= end:
                assert len(found) >= at_least, f"{topic}: {len(found)} records, not {at_least}"
                return found
            consumer.unassign()
    finally:
        consumer.close()


async def records(bootstrap: str, topic: str, *, at_least: int = 0) -> list[Message]:
    return await asyncio.to_thread(read_all, bootstrap, topic, at_least=at_least)


async def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``aegis-msg ARGV`` in process (on a thread: it blocks); status, stdout, stderr."""
    capsys.readouterr()
    status = await asyncio.to_thread(main, argv)
    out, err = capsys.readouterr()
    return status, out, err


def committed(bootstrap: str, group: str) -> dict[tuple[str, int], int]:
    """The offsets ``group`` has committed, by topic and partition."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    request = [ConsumerGroupTopicPartitions(group)]
    found = admin.list_consumer_group_offsets(request)[group].result(10).topic_partitions
    return {(tp.topic, tp.partition): tp.offset for tp in found}


def produce(
    bootstrap: str,
    topic: str,
    items: list[tuple[bytes | None, bytes, list[Any]]],
    *,
    partition: int = 0,
) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for key, value, headers in items:
        producer.produce(topic, value, key, headers=headers, partition=partition)
    assert producer.flush(10) == 0


def spring_headers(event_id: str, origin: str, offset: int, message: str) -> list[Any]:
    return [
        ("content-type", b"application/json"),
        ("ce_type", b"test.dlt.order.placed"),
        ("ce_id", event_id.encode()),
        ("kafka_dlt-original-topic", origin.encode()),
        ("kafka_dlt-original-partition", (0).to_bytes(4, "big")),
        ("kafka_dlt-original-offset", offset.to_bytes(8, "big")),
        ("kafka_dlt-exception-fqcn", b"shop.GatewayError"),
        ("kafka_dlt-exception-message", message.encode()),
    ]


@pytest.fixture
def bootstrap(kafka_bootstrap: str) -> str:
    return kafka_bootstrap


@pytest.fixture
def kafka(bootstrap: str) -> KafkaSettings:
    return KafkaSettings(
        bootstrap_servers=bootstrap, client_id="aegis-msg-dlt-tests", consumer=FAST_GROUP_JOIN
    )


@asynccontextmanager
async def service(
    settings: KafkaSettings, topic: str, group_id: str, handler: Callable[[OrderPlaced], Any]
) -> AsyncIterator[EventPublisher]:
    """A publisher and a running subscriber in ``group_id`` whose handler is ``handler``."""
    registry = EventRegistry()
    async with KafkaTransport(settings) as transport:
        subscriber = EventSubscriber(
            transport, group_id=group_id, registry=registry, retry=FAIL_FAST
        )
        subscriber.on(OrderPlaced, topic=topic)(handler)
        async with subscriber:
            yield EventPublisher(transport, source="shop", registry=registry)


async def assert_listed(
    capsys: pytest.CaptureFixture[str],
    bootstrap: str,
    *,
    dlt: str,
    topic: str,
    group: str,
    broken: list[OrderPlaced],
) -> None:
    """``dlt list`` shows each dead letter with its original record and error, as text and JSON."""
    status, out, err = await run(["dlt", "list", dlt, "--bootstrap", bootstrap], capsys)
    assert (status, err) == (0, "")
    lines = out.splitlines()
    assert len(lines) == 4
    for offset, (line, event) in enumerate(zip(lines[:3], broken, strict=True)):
        assert line.startswith(f"0:{offset}  ")
        assert f"test.dlt.order.placed {event.id}" in line
        assert f"from {topic}[0]@{offset + 1}" in line
        assert line.endswith(f"RuntimeError: gateway rejected {event.data.order_id}")
    assert lines[3] == f"3 dead letters in {dlt}; from {topic} (3); errors RuntimeError (3)"

    status, out, err = await run(["dlt", "list", dlt, "--json", "--bootstrap", bootstrap], capsys)
    listed = [json.loads(line) for line in out.splitlines()]
    assert [item["event_id"] for item in listed] == [event.id for event in broken]
    assert [item["original_offset"] for item in listed] == [1, 2, 3]
    assert {item["consumer_group"] for item in listed} == {group}
    assert listed[0]["exception_message"] == "gateway rejected o-1"
    assert listed[0]["attempts"] == 2
    assert err.startswith("3 dead letters")


async def test_dead_letters_are_listed_then_replayed_once_to_the_fixed_handler(
    kafka: KafkaSettings,
    bootstrap: str,
    kafka_topic_factory: TopicFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    topic = kafka_topic_factory("orders")
    dlt = f"{topic}.DLT"
    group = unique_name("aegis-test-billing", separator="-")
    orders = [OrderPlaced(data=OrderData(order_id=f"o-{i}", total_cents=100 + i)) for i in range(4)]
    broken = orders[1:]  # o-0 is fine; the gateway rejects the others

    async def gateway_down(event: OrderPlaced) -> None:
        if event.data.order_id != "o-0":
            raise RuntimeError(f"gateway rejected {event.data.order_id}")

    async with service(kafka, topic, group, gateway_down) as publisher:
        await publisher.publish_batch(orders, topic=topic)
        dead = await records(bootstrap, dlt, at_least=3)
    offsets = committed(bootstrap, group)
    assert offsets == {(topic, 0): 4}

    await assert_listed(capsys, bootstrap, dlt=dlt, topic=topic, group=group, broken=broken)
    assert committed(bootstrap, group) == offsets  # the service's group is left alone

    status, out, _ = await run(
        ["dlt", "replay", dlt, "--all", "--dry-run", "--bootstrap", bootstrap], capsys
    )
    assert status == 0
    assert (
        out.splitlines()[-1] == "dry run: 3 of 3 dead letters would be replayed; nothing was sent"
    )
    assert f"0:0  test.dlt.order.placed {broken[0].id}  -> {topic}  would be replayed" in out
    assert len(await records(bootstrap, topic)) == 4  # nothing was published

    status, out, _ = await run(["dlt", "replay", dlt, "--all", "--bootstrap", bootstrap], capsys)
    assert status == 0, out
    assert out.splitlines()[-1] == "replayed 3 of 3 dead letters"
    for offset, event in enumerate(broken):
        assert (
            f"0:{offset}  test.dlt.order.placed {event.id}  -> {topic}[0]@{offset + 4}  replayed"
            in out
        )
    replayed = (await records(bootstrap, topic, at_least=7))[4:]
    for message, letter in zip(replayed, dead, strict=True):
        assert message.key() == letter.key()
        assert message.value() == letter.value()
        assert message.headers() == [
            *(letter.headers() or []),
            ("aegis_dlt-replayed-from", f"{dlt}:0:{letter.offset()}".encode()),
        ]

    # The fixed service, in the same group, gets each replayed event once, as it was sent.
    received: list[OrderPlaced] = []
    marker = OrderPlaced(data=OrderData(order_id="marker", total_cents=0))
    seen_marker = asyncio.Event()

    async def gateway_up(event: OrderPlaced) -> None:
        received.append(event)
        if event.id == marker.id:
            seen_marker.set()

    async with service(kafka, topic, group, gateway_up) as publisher:
        await publisher.publish(marker, topic=topic)  # after the replays on the one partition
        await asyncio.wait_for(seen_marker.wait(), 60)
    assert [event.id for event in received] == [*(event.id for event in broken), marker.id]
    assert [event.data for event in received[:3]] == [event.data for event in broken]
    assert [event.time for event in received[:3]] == [event.time for event in broken]


async def test_a_replayed_event_that_fails_again_is_traceable_to_both_failures(
    kafka: KafkaSettings,
    bootstrap: str,
    kafka_topic_factory: TopicFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    topic = kafka_topic_factory("orders")
    dlt = f"{topic}.DLT"
    order = OrderPlaced(data=OrderData(order_id="o-7", total_cents=700))

    async def gateway_down(event: OrderPlaced) -> None:
        raise RuntimeError(f"gateway rejected {event.data.order_id}")

    group = unique_name("aegis-test-billing", separator="-")
    async with service(kafka, topic, group, gateway_down) as publisher:
        await publisher.publish(order, topic=topic)
        await records(bootstrap, dlt, at_least=1)
        status, out, _ = await run(["dlt", "replay", dlt, "0:0", "--bootstrap", bootstrap], capsys)
        assert status == 0, out
        first, second = await records(bootstrap, dlt, at_least=2)

    assert dict(second.headers() or [])["ce_id"] == order.id.encode()
    status, out, _ = await run(["dlt", "show", dlt, "0:1", "--bootstrap", bootstrap], capsys)
    assert status == 0
    assert f"record        {dlt} 0:1\n" in out
    assert f"original      {topic}[0]@0 at " in out  # the first failure's record
    assert f"replayed from {dlt}:0:0\n" in out
    assert "attempts      4\n" in out  # two calls before the replay, two after
    assert "error         RuntimeError: gateway rejected o-7\n" in out
    assert "  kafka_dlt-original-partition: 0\n" in out
    assert '  "order_id": "o-7",\n' in out
    assert "stack trace\n  Traceback (most recent call last):\n" in out
    assert "in gateway_down\n" in out

    status, out, _ = await run(
        ["dlt", "show", dlt, "0:1", "--json", "--bootstrap", bootstrap], capsys
    )
    shown = json.loads(out)
    assert shown["replayed_from"] == [f"{dlt}:0:0"]
    assert shown["payload"] == {"order_id": "o-7", "total_cents": 700}
    assert shown["original_offset"] == 0
    assert ["kafka_dlt-original-consumer-group", group] in shown["headers"]
    assert first.offset() == 0


@pytest.fixture
def dead_letters(bootstrap: str, kafka_topic_factory: TopicFactory) -> tuple[str, str]:
    """A two-partition dead-letter topic of hand-made records, and the origin topic's name."""
    origin = kafka_topic_factory("origin")
    dlt = kafka_topic_factory("origin-dlt", partitions=2)
    producer = Producer({"bootstrap.servers": bootstrap})
    for partition in (0, 1):
        for offset in range(3):
            event_id = f"evt-{partition}-{offset}"
            headers = spring_headers(event_id, origin, offset, f"declined {event_id}")
            producer.produce(dlt, b'{"order_id": "o"}', b"k", headers=headers, partition=partition)
    producer.produce(dlt, b"not json", None, headers=[("ce_id", b"orphan")], partition=1)
    assert producer.flush(10) == 0
    return dlt, origin


def test_reading_commits_nothing_even_when_handed_the_service_group_settings(
    dead_letters: tuple[str, str], bootstrap: str
) -> None:
    dlt, _ = dead_letters
    service_group = unique_name("aegis-test-service", separator="-")
    service = Consumer({"bootstrap.servers": bootstrap, "group.id": service_group})
    service.commit(offsets=[TopicPartition(dlt, 0, 1)], asynchronous=False)
    service.close()
    careless = KafkaSettings(
        bootstrap_servers=bootstrap,
        consumer={
            "group.id": service_group,
            "enable.auto.commit": True,
            "auto.commit.interval.ms": 10,
            "enable.auto.offset.store": True,
        },
    )
    with DeadLetters(careless) as dead:
        assert len(list(dead.read(dlt))) == 7
        assert dead.get(dlt, 1, 2).event_id == "evt-1-2"
        reader_group = dead.reader_group
    assert committed(bootstrap, service_group) == {(dlt, 0): 1}
    assert committed(bootstrap, reader_group) == {}


def test_a_later_read_sees_records_added_since_an_earlier_one(
    dead_letters: tuple[str, str], bootstrap: str
) -> None:
    dlt, origin = dead_letters
    with DeadLetters(KafkaSettings(bootstrap_servers=bootstrap)) as dead:
        assert [
            letter.offset
            for letter in dead.read(dlt, DeadLetterSelection(positions=(OffsetRange(1, 4, None),)))
        ] == []
        produce(
            bootstrap,
            dlt,
            [(b"k", b"{}", spring_headers("evt-late", origin, 9, "late"))],
            partition=1,
        )
        later = list(dead.read(dlt, DeadLetterSelection(positions=(OffsetRange(1, 4, None),))))
        assert [(letter.position, letter.event_id) for letter in later] == [("1:4", "evt-late")]
        assert dead.get(dlt, 1, 4).exception_message == "late"


async def test_list_selects_records_by_position_offset_id_time_and_limit(
    dead_letters: tuple[str, str], bootstrap: str, capsys: pytest.CaptureFixture[str]
) -> None:
    dlt, _ = dead_letters

    async def positions(*argv: str) -> list[str]:
        status, out, err = await run(
            ["dlt", "list", dlt, "--json", "--bootstrap", bootstrap, *argv], capsys
        )
        assert status == 0, err
        return [
            f"{item['partition']}:{item['offset']}" for item in map(json.loads, out.splitlines())
        ]

    assert await positions() == ["0:0", "0:1", "0:2", "1:0", "1:1", "1:2", "1:3"]
    assert await positions("1:1-2", "0:0") == ["0:0", "1:1", "1:2"]
    assert await positions("1:2-") == ["1:2", "1:3"]
    assert await positions("--from-offset", "1", "--to-offset", "2") == ["0:1", "0:2", "1:1", "1:2"]
    assert await positions("--id", "evt-1-0", "--id", "evt-0-2") == ["0:2", "1:0"]
    assert await positions("--id", "evt-1-0", "0:0-2") == []  # different kinds: all must hold
    assert await positions("--limit", "4") == ["0:0", "0:1", "0:2", "1:0"]
    assert await positions("--since", "2h") == await positions()
    assert await positions("--until", "2h") == []
    assert await positions("--since", "2099-01-01T00:00:00Z") == []
    status, out, _ = await run(
        ["dlt", "list", dlt, "--id", "nope", "--bootstrap", bootstrap], capsys
    )
    assert (status, out) == (0, f"no dead letters in {dlt} match\n")


async def test_replay_reports_each_record_that_cannot_be_sent_and_exits_1(
    dead_letters: tuple[str, str],
    bootstrap: str,
    kafka_topic_factory: TopicFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    dlt, origin = dead_letters
    status, out, err = await run(
        ["dlt", "replay", dlt, "0:0", "1:3", "--bootstrap", bootstrap], capsys
    )
    assert status == 1
    assert f"0:0  test.dlt.order.placed evt-0-0  -> {origin}[0]@0  replayed" in out
    assert "1:3  ? orphan  -> ?  FAILED: no kafka_dlt-original-topic header; use --to" in out
    assert out.splitlines()[-1] == "replayed 1 of 2 dead letters; 1 failed"

    status, out, _ = await run(
        ["dlt", "replay", dlt, "1:3", "--to", f"{origin}-missing", "--bootstrap", bootstrap], capsys
    )
    assert status == 1
    assert f"FAILED: topic '{origin}-missing' does not exist" in out

    other = kafka_topic_factory("elsewhere")
    status, out, _ = await run(
        ["dlt", "replay", dlt, "1:3", "--to", other, "--bootstrap", bootstrap], capsys
    )
    assert status == 0
    (moved,) = await records(bootstrap, other, at_least=1)
    assert moved.value() == b"not json"
    assert moved.headers() == [
        ("ce_id", b"orphan"),
        ("aegis_dlt-replayed-from", f"{dlt}:1:3".encode()),
    ]

    status, _, err = await run(
        [
            "dlt",
            "replay",
            dlt,
            "--id",
            "evt-0-1",
            "--id",
            "nope",
            "--dry-run",
            "--bootstrap",
            bootstrap,
        ],
        capsys,
    )
    assert status == 1
    assert f"aegis-msg dlt: error: no dead letter of event nope in {dlt}\n" in err
    assert len(await records(bootstrap, origin)) == 1  # the dry run sent nothing

    argv = ["dlt", "replay", dlt, "--id", "evt-0-1", "--id", "evt-0-2", "--limit", "1"]
    status, out, err = await run([*argv, "--dry-run", "--bootstrap", bootstrap], capsys)
    assert (status, err) == (0, "")  # the limit, not a missing event, left evt-0-2 out
    assert out.splitlines()[-1] == "dry run: 1 of 1 dead letter would be replayed; nothing was sent"


async def test_bad_topics_records_and_brokers_are_one_line_errors(
    dead_letters: tuple[str, str], bootstrap: str, capsys: pytest.CaptureFixture[str]
) -> None:
    dlt, _ = dead_letters
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"127.0.0.1:{probe.getsockname()[1]}"
    cases = [
        (["dlt", "list", f"{dlt}-nope"], f"topic '{dlt}-nope' does not exist on {bootstrap}"),
        (["dlt", "show", dlt, "0:99"], f"topic '{dlt}' has no record at 0:99"),
        (["dlt", "show", dlt, "7:0"], f"topic '{dlt}' has partitions 0-1; no partition 7"),
        (["dlt", "list", dlt, "5:0-"], f"topic '{dlt}' has partitions 0-1; no partition 5"),
    ]
    for argv, message in cases:
        status, out, err = await run([*argv, "--bootstrap", bootstrap], capsys)
        assert (status, out) == (1, ""), argv
        assert (
            err
            == f"aegis-msg dlt: error: {message}" + err[len(f"aegis-msg dlt: error: {message}") :]
        )
        assert err.count("\n") == 1, err

    status, out, err = await run(
        ["dlt", "list", dlt, "--bootstrap", closed, "--timeout", "1"], capsys
    )
    assert (status, out) == (1, "")
    assert err.startswith(f"aegis-msg dlt: error: cannot reach Kafka at {closed} within 1 s: ")
    assert "Connection refused" in err
    assert err.count("\n") == 1


async def test_the_installed_command_lists_dead_letters(
    dead_letters: tuple[str, str], bootstrap: str
) -> None:
    dlt, origin = dead_letters
    command = Path(sys.executable).with_name("aegis-msg")
    assert command.exists(), "reinstall aegis-msg: its console script is missing"
    result = await asyncio.to_thread(
        subprocess.run,
        [str(command), "dlt", "list", dlt, "0:1"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"AEGIS_MSG_KAFKA__BOOTSTRAP_SERVERS": bootstrap, "PATH": ""},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        result.stdout.splitlines()[0],
        f"1 dead letter in {dlt}; from {origin} (1); errors GatewayError (1)",
    ]
    assert result.stdout.startswith("0:1  ")
    assert (
        f"test.dlt.order.placed evt-0-1  from {origin}[0]@1  GatewayError: declined evt-0-1"
        in result.stdout
    )


async def test_the_readme_example_finds_and_replays_a_dead_letter_by_event_id(
    dead_letters: tuple[str, str], bootstrap: str
) -> None:
    dlt, origin = dead_letters
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("## Dead letters\n", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None
    code = (
        match.group(1)
        .replace("kafka-1:9092", bootstrap)
        .replace('"orders.DLT"', repr(dlt))
        .replace("01a248d3-9179-7002-939a-4e0219d89275", "evt-0-1")
    )
    namespace: dict[str, Any] = {}
    await asyncio.to_thread(exec, code, namespace)
    (result,) = namespace["results"]
    assert (result.target, result.letter.position) == (origin, "0:1")
    (replayed,) = await records(bootstrap, origin, at_least=1)
    assert dict(replayed.headers() or [])["ce_id"] == b"evt-0-1"


async def test_replay_counts_on_a_terminal_and_prints_no_progress_in_a_pipe(
    dead_letters: tuple[str, str], bootstrap: str, capsys: pytest.CaptureFixture[str]
) -> None:
    dlt, origin = dead_letters
    argv = ["dlt", "replay", dlt, "--all", "--bootstrap", bootstrap]
    with terminal_stderr() as terminal:
        status, out, _ = await run(argv, capsys)
    assert status == 1  # 1:3 has no original topic
    stamp = r"\s*\d+\.\ds  "
    read, replayed = terminal.lines()
    assert re.fullmatch(f"{stamp}read {dlt}: 7 selected in \\d+\\.\\d\\ds", read), read
    assert re.fullmatch(f"{stamp}replayed 7/7, 1 failed", replayed), replayed
    # One line redrawn in place: the record that cannot be sent is counted first, at once.
    assert re.search(f"\r{stamp}replayed 1/7, 1 failed", terminal.text), terminal.text
    assert out.splitlines()[-1] == "replayed 6 of 7 dead letters; 1 failed"

    status, out, err = await run(argv, capsys)  # standard error is a pipe: no progress
    assert (status, err) == (1, "")
    assert out.splitlines()[-1] == "replayed 6 of 7 dead letters; 1 failed"
    assert len(await records(bootstrap, origin, at_least=12)) == 12

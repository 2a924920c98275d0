"""The Kafka producer's delivery callbacks: one per message in flight, reused."""

from __future__ import annotations

import asyncio
from array import array

import pytest
from confluent_kafka import KafkaError, Message

from aegis.msg._kafka_reports import _Batch, _ReportSlots

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def batch_of(size: int) -> _Batch:
    batch = _Batch(asyncio.get_running_loop())
    batch.topics += ["t"] * size
    batch.event_ids += [f"e{index}" for index in range(size)]
    batch.partitions.extend(array("i", [-1]) * size)
    batch.offsets.extend(array("q", [-1]) * size)
    batch.produced = size
    return batch


async def test_each_report_lands_on_its_message_and_frees_its_slot_for_the_next() -> None:
    slots = _ReportSlots()
    first = batch_of(3)
    taken = [slots.take(first, index, b"v%d" % index, b"k", [("h", b"1")]) for index in range(3)]
    assert sorted(slot for slot, _ in taken) == [0, 1, 2]
    taken[2][1](None, Message(topic="t", partition=1, offset=12))
    taken[0][1](None, Message(topic="t", partition=0, offset=10))
    taken[1][1](KafkaError(KafkaError._MSG_TIMED_OUT), Message(topic="t"))
    assert list(first.partitions) == [0, -1, 1]
    assert list(first.offsets) == [10, -1, 12]
    assert first.failed_records[1] == ("t", b"v1", b"k", [("h", b"1")], "e1")
    assert first.complete()  # every report is in

    second = batch_of(4)
    reused = [slots.take(second, index, b"", None, []) for index in range(4)]
    assert sorted(slot for slot, _ in reused) == [0, 1, 2, 3]  # three reused, one new

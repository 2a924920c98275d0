import itertools
import os
import random
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aegis.core.errors import InvalidInputError
from aegis.core.models import _ids, uuid7, uuid7_str, uuid7_timestamp
from aegis.core.models._ids import _Uuid7Generator

MAX_MS = (1 << 48) - 1


def _fields(value: UUID) -> tuple[int, int, int, int, int]:
    """Split a UUID into (unix_ts_ms, ver, rand_a, var, rand_b) as RFC 9562 section 5.7 lays out."""
    number = value.int
    return (
        number >> 80,
        (number >> 76) & 0xF,
        (number >> 64) & 0xFFF,
        (number >> 62) & 0b11,
        number & ((1 << 62) - 1),
    )


def test_uuid7_has_version_7_and_rfc_9562_variant() -> None:
    value = uuid7()
    _, version, _, variant, _ = _fields(value)
    assert value.version == 7
    assert version == 7
    assert variant == 0b10


def test_uuid7_embeds_the_current_unix_millisecond() -> None:
    before = time.time_ns() // 1_000_000
    value = uuid7()
    after = time.time_ns() // 1_000_000
    assert before <= _fields(value)[0] <= after + 1


def test_uuid7_timestamp_returns_the_embedded_utc_time() -> None:
    value = UUID("019b76da-a800-7000-8000-000000000000")
    assert uuid7_timestamp(value) == datetime(2026, 1, 1, tzinfo=UTC)


def test_uuid7_timestamp_refuses_a_uuid4_naming_the_rule() -> None:
    with pytest.raises(InvalidInputError) as caught:
        uuid7_timestamp(uuid4())
    assert caught.value.field == "id"
    assert caught.value.errors[0].type == "uuid_version"


@settings(max_examples=50, deadline=None)
@given(st.integers(min_value=2, max_value=3000))
def test_uuid7_values_made_in_sequence_strictly_increase(count: int) -> None:
    values = [uuid7() for _ in range(count)]
    assert values == sorted(values)
    assert len(set(values)) == count
    assert all(value.version == 7 for value in values)


@settings(max_examples=100)
@given(
    st.integers(min_value=0, max_value=MAX_MS),
    st.integers(min_value=1, max_value=50),
    st.integers(min_value=0),
)
def test_fields_are_laid_out_per_rfc_9562_for_any_timestamp(
    now_ms: int, count: int, seed: int
) -> None:
    generator = _Uuid7Generator(clock_ms=lambda: now_ms, entropy=random.Random(seed).randbytes)  # noqa: S311 - test data
    values = [generator() for _ in range(count)]
    assert values == sorted(values)
    for value in values:
        timestamp, version, _, variant, _ = _fields(value)
        assert version == 7
        assert variant == 0b10
        assert now_ms <= timestamp <= min(now_ms + 1, MAX_MS)


def test_counter_starts_with_its_top_bit_clear_and_counts_up_within_a_millisecond() -> None:
    generator = _Uuid7Generator(clock_ms=lambda: 1_000, entropy=lambda size: b"\xff" * size)
    counters = [_fields(generator())[2] for _ in range(3)]
    assert counters == [0x7FF, 0x800, 0x801]


def test_counter_rollover_moves_the_timestamp_forward_and_keeps_order() -> None:
    generator = _Uuid7Generator(clock_ms=lambda: 5_000, entropy=lambda size: b"\xff" * size)
    values = [generator() for _ in range(0x801 + 2)]
    assert values == sorted(values)
    last_of_millisecond, first_of_next = _fields(values[0x800]), _fields(values[0x801])
    assert (last_of_millisecond[0], last_of_millisecond[2]) == (5_000, 0xFFF)
    assert first_of_next[0] == 5_001


def test_clock_stepping_back_keeps_ids_increasing() -> None:
    ticks = iter([10_000, 10_000, 9_000, 9_500])
    generator = _Uuid7Generator(clock_ms=lambda: next(ticks))
    values = [generator() for _ in range(4)]
    assert values == sorted(values)
    assert {_fields(value)[0] for value in values} == {10_000}


def test_a_timestamp_beyond_48_bits_raises_overflow() -> None:
    generator = _Uuid7Generator(clock_ms=lambda: 1 << 48)
    with pytest.raises(OverflowError):
        generator()


def test_uuid7_from_many_threads_is_unique_and_ordered_per_thread() -> None:
    results: list[list[UUID]] = [[] for _ in range(8)]

    def work(bucket: list[UUID]) -> None:
        bucket.extend(uuid7() for _ in range(2000))

    threads = [threading.Thread(target=work, args=(bucket,)) for bucket in results]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [value for bucket in results for value in bucket]
    assert len(set(every)) == len(every)
    assert all(bucket == sorted(bucket) for bucket in results)


class _CountingLock:
    """A lock that counts how often it was taken."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.taken = 0

    def __enter__(self) -> None:
        self.lock.acquire()
        self.taken += 1

    def __exit__(self, *exc_info: object) -> None:
        self.lock.release()


def test_only_a_new_millisecond_takes_the_lock_with_the_gil() -> None:
    ticks = iter([7_000] * 5 + [7_001] * 5)
    generator = _Uuid7Generator(clock_ms=lambda: next(ticks))
    lock = generator._lock = _CountingLock()  # type: ignore[assignment]
    values = [generator.text() for _ in range(10)]
    assert values == sorted(values)
    assert lock.taken == 2


def test_without_the_gil_every_id_takes_the_lock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_ids, "_GIL", False)
    ticks = iter([7_000] * 5 + [7_001] * 5)
    generator = _Uuid7Generator(clock_ms=lambda: next(ticks), entropy=bytes)
    lock = generator._lock = _CountingLock()  # type: ignore[assignment]
    values = [UUID(generator.text()) for _ in range(5)] + [generator() for _ in range(5)]
    assert values == sorted(values)
    assert [_fields(value)[2] for value in values] == [0, 1, 2, 3, 4, 0, 1, 2, 3, 4]
    assert lock.taken == 10


@pytest.fixture
def frequent_thread_switches() -> Iterator[None]:
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(interval)


@pytest.mark.usefixtures("frequent_thread_switches")
@pytest.mark.parametrize("reads_per_ms", [50, 5000], ids=["new-milliseconds", "rollovers"])
def test_threads_racing_over_new_milliseconds_and_rollovers_get_unique_ordered_ids(
    reads_per_ms: int,
) -> None:
    """All-ones random bits: two ids of one millisecond differ by their counter only."""
    reads = itertools.count()
    generator = _Uuid7Generator(
        clock_ms=lambda: 1_000_000 + next(reads) // reads_per_ms,
        entropy=lambda size: b"\xff" * size,
    )
    results: list[list[str]] = [[] for _ in range(8)]
    start = threading.Barrier(len(results))

    def work(bucket: list[str]) -> None:
        start.wait()
        bucket.extend(generator.text() for _ in range(5000))

    threads = [threading.Thread(target=work, args=(bucket,)) for bucket in results]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [value for bucket in results for value in bucket]
    assert len(set(every)) == len(every)
    assert all(bucket == sorted(bucket) for bucket in results)


def test_a_reset_after_fork_generator_still_makes_ordered_ids() -> None:
    generator = _Uuid7Generator()
    first = generator()
    generator.reset_after_fork()
    assert generator() > first


def test_uuid7_timestamps_track_wall_clock_not_a_uuid4() -> None:
    value = uuid7()
    assert abs(uuid7_timestamp(value) - datetime.now(UTC)) < timedelta(seconds=5)


def test_uuid7_str_is_the_canonical_text_of_increasing_version_7_uuids() -> None:
    values = [uuid7_str() for _ in range(3000)]
    parsed = [UUID(value) for value in values]
    assert values == [str(value) for value in parsed]
    assert parsed == sorted(parsed)
    assert len(set(values)) == len(values)
    assert all(_fields(value)[1:4:2] == (7, 0b10) for value in parsed)


def test_text_and_uuid_ids_of_one_generator_share_one_sequence() -> None:
    generator = _Uuid7Generator(clock_ms=lambda: 0x0123_4567_89AB, entropy=bytes)
    first, second, third = generator.text(), generator(), generator.text()
    assert first == "01234567-89ab-7000-8000-000000000000"
    assert UUID(first) < second < UUID(third)
    assert _fields(UUID(third))[2] == 2


def test_a_forked_child_reads_fresh_random_bits_not_its_parents() -> None:
    reads: list[int] = []

    def entropy(size: int) -> bytes:
        reads.append(size)
        return os.urandom(size)

    generator = _Uuid7Generator(entropy=entropy)
    generator()
    generator()
    assert len(reads) == 1
    generator.reset_after_fork()
    generator()
    assert len(reads) == 2

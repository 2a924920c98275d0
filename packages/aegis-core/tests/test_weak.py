"""OncePerObject: one value per key object, built once, released with the object."""

from __future__ import annotations

import gc
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from aegis.core.utils.weak import OncePerObject


class Key:
    """An object compared by identity, like a Prometheus registry."""


def test_builds_once_per_key_object() -> None:
    built: list[Key] = []

    def build(key: Key) -> list[Key]:
        built.append(key)
        return [key]

    values = OncePerObject(build)
    first, second = Key(), Key()
    assert values(first) is values(first)
    assert values(second) is not values(first)
    assert built == [first, second]


def test_a_dropped_key_takes_its_value_with_it() -> None:
    values: OncePerObject[Key, object] = OncePerObject(lambda key: object())
    key = Key()
    values(key)
    assert len(values._values) == 1
    del key
    gc.collect()
    assert len(values._values) == 0


def test_concurrent_first_calls_build_once() -> None:
    calls = 0
    barrier = threading.Barrier(8)

    def build(key: Key) -> int:
        nonlocal calls
        calls += 1
        time.sleep(0.05)  # a slow build: without the lock the other threads would build too
        return calls

    values = OncePerObject(build)
    key = Key()

    def ask() -> int:
        barrier.wait()
        return values(key)

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: ask(), range(8)))
    assert results == [1] * 8
    assert calls == 1


def test_a_build_given_to_the_call_is_used_only_while_the_key_has_no_value() -> None:
    values: OncePerObject[Key, str] = OncePerObject()
    key = Key()
    assert values(key, lambda _: "first caller's") == "first caller's"
    assert values(key, lambda _: "second caller's") == "first caller's"
    with pytest.raises(TypeError, match="no build function"):
        values(Key())


def test_a_failing_build_keeps_nothing_and_the_next_call_builds_again() -> None:
    values: OncePerObject[Key, str] = OncePerObject()
    key = Key()

    def fail(_: Key) -> str:
        raise ValueError("duplicated timeseries")

    with pytest.raises(ValueError, match="duplicated"):
        values(key, fail)
    assert values(key, lambda _: "built") == "built"

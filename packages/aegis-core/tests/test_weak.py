"""OncePerObject: one value per key object, built once, released with the object."""

from __future__ import annotations

import gc
import threading
import time
from concurrent.futures import ThreadPoolExecutor

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

"""The near cache's LRU, TTL and its guard against storing values read before a change."""

from __future__ import annotations

import pytest

from aegis.cache._near import NearCache


@pytest.fixture
def near() -> NearCache:
    made = NearCache(max_size=3, ttl=60)
    made.ready = True
    return made


def test_it_keeps_the_most_recently_used_entries(near: NearCache) -> None:
    for key in "abc":
        near.put(key, key.encode(), near.token())
    assert near.get("a") == b"a"
    near.put("d", b"d", near.token())
    assert len(near) == 3
    assert near.get("b") is None
    assert near.get("a") == b"a"


def test_a_value_read_before_an_invalidation_is_not_kept(near: NearCache) -> None:
    token = near.token()
    near.invalidate(["k"])
    near.put("k", b"stale", token)
    assert near.get("k") is None
    near.put("k", b"fresh", near.token())
    assert near.get("k") == b"fresh"
    token = near.token()
    near.clear()
    near.put("k", b"stale", token)
    assert near.get("k") is None


def test_nothing_is_served_while_disconnected_or_after_the_ttl() -> None:
    now = [0.0]
    near = NearCache(max_size=10, ttl=1.0, clock=lambda: now[0])
    near.put("k", b"v", near.token())
    assert near.get("k") is None  # not ready: nothing stored
    near.ready = True
    near.put("k", b"v", near.token())
    now[0] = 0.999
    assert near.get("k") == b"v"
    now[0] = 1.0
    assert near.get("k") is None  # expired


def test_forgotten_invalidations_still_refuse_old_reads(near: NearCache) -> None:
    token = near.token()
    near.invalidate([f"k{i}" for i in range(10_001)])
    near.put("k0", b"stale", token)
    assert near.get("k0") is None

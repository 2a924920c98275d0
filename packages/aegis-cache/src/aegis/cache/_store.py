"""Encoded entries on a backend, behind the fail-open policy, with the near cache in front.

The read and write paths every :class:`~aegis.cache.Cache` operation goes through: a read that
fails is a miss, a write that fails is skipped, and whatever this process writes or deletes
leaves its near cache at once (read your own writes).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

from aegis.cache._backend import Backend
from aegis.cache._failopen import FAILURES, FailOpen
from aegis.cache._metrics import Labels
from aegis.cache._near import InvalidationListener, NearCache


class Store:
    """Reads and writes of full keys (namespace included) and bytes; counts hits and misses.

    Args:
        backend: where entries live.
        fail_open: the policy every backend call goes through.
        prefix: the namespace prefix, for the keys of tag sets.
        near: the in-process near cache, when the cache has one.
        listener: starts the near cache (on the first read, if nobody started it before).
    """

    def __init__(
        self,
        backend: Backend,
        fail_open: FailOpen,
        prefix: str,
        near: NearCache | None = None,
        listener: InvalidationListener | None = None,
    ) -> None:
        self.backend = backend
        self.fail_open = fail_open
        self.prefix = prefix
        self.near = near
        self._listener = listener
        self.hits = self.near_hits = self.misses = 0

    async def read(self, full_key: str, labels: Labels) -> bytes | None:
        """The hit path: near cache, then one GET; a failure is a miss."""
        near = self.near
        token = 0
        if near is not None:
            data = near.get(full_key)
            if data is not None:
                self.hits += 1
                self.near_hits += 1
                labels.hit_near.inc()
                return data
            token = near.token()
            if not near.ready and self._listener is not None:
                self._listener.start()
        fail_open = self.fail_open
        if not fail_open.breaker.allow():
            fail_open.failed("get", None, labels)
            self.misses += 1
            labels.miss.inc()
            return None
        start = time.perf_counter()
        try:
            data = await self.backend.get(full_key)
        except FAILURES as exc:
            fail_open.failed("get", exc, labels)
            data = None
        else:
            fail_open.succeeded()
            labels.get_seconds.observe(time.perf_counter() - start)
        if data is None:
            self.misses += 1
            labels.miss.inc()
            return None
        self.hits += 1
        labels.hit_remote.inc()
        if near is not None:
            near.put(full_key, data, token)
        return data

    async def read_many(self, full_keys: Sequence[str], labels: Labels) -> list[bytes | None]:
        """The data of each key, None where absent: near cache first, then one MGET."""
        near = self.near
        if near is None or not near.ready:
            return await self._fetch(full_keys, labels, near, 0)
        token = near.token()
        found = [near.get(full_key) for full_key in full_keys]
        missing = [index for index, data in enumerate(found) if data is None]
        in_process = len(found) - len(missing)
        self.hits += in_process
        self.near_hits += in_process
        labels.hit_near.inc(in_process)
        if missing:
            fetched = await self._fetch([full_keys[i] for i in missing], labels, near, token)
            for index, data in zip(missing, fetched, strict=True):
                found[index] = data
        return found

    async def _fetch(
        self, full_keys: Sequence[str], labels: Labels, near: NearCache | None, token: int
    ) -> list[bytes | None]:
        nothing: list[bytes | None] = [None] * len(full_keys)
        if not full_keys:
            return nothing
        values = await self.fail_open.attempt(
            "get_many", lambda: self.backend.get_many(full_keys), nothing, labels
        )
        hits = len(values) - values.count(None)
        if near is not None:
            for full_key, data in zip(full_keys, values, strict=True):
                if data is not None:
                    near.put(full_key, data, token)
        self.hits += hits
        self.misses += len(full_keys) - hits
        labels.hit_remote.inc(hits)
        labels.miss.inc(len(full_keys) - hits)
        return values

    async def write(
        self,
        full_key: str,
        data: bytes,
        ttl_ms: int,
        tags: Sequence[str] = (),
        labels: Labels | None = None,
    ) -> bool:
        """Store already-encoded ``data`` (listed in each tag's set); False when skipped."""
        tag_keys = [self.tag_key(tag) for tag in tags]
        stored = await self.fail_open.attempt(
            "set",
            lambda: self.backend.set(full_key, data, ttl_ms, tag_keys=tag_keys),
            False,
            labels,
        )
        self.forget([full_key])
        return stored

    async def write_many(
        self, rows: Sequence[tuple[str, bytes, int]], tags: Sequence[str] = ()
    ) -> bool:
        """Store every ``(full key, data, ttl_ms)`` in one round trip; False when skipped."""
        tag_keys = [self.tag_key(tag) for tag in tags]
        self.forget(row[0] for row in rows)

        async def call() -> bool:
            await self.backend.set_many(rows, tag_keys)
            return True

        return await self.fail_open.attempt("set_many", call, False)

    async def delete(self, full_keys: Sequence[str]) -> int:
        """Delete ``full_keys``; how many existed (0 when the backend is unavailable)."""
        self.forget(full_keys)
        return await self.fail_open.attempt("delete", lambda: self.backend.delete(full_keys), 0)

    def forget(self, full_keys: Iterable[str]) -> None:
        """Drop keys this process changed from its near cache at once."""
        if self.near is not None:
            self.near.invalidate(list(full_keys))

    def forget_everything(self) -> None:
        """Empty the near cache (before deleting keys it cannot list: patterns, tags)."""
        if self.near is not None:
            self.near.clear()

    def tag_key(self, tag: str) -> str:
        """The full key of the set that lists the entries tagged ``tag``."""
        return f"{self.prefix}__tag__:{tag}"

"""What aegis.cache costs on a cache hit, against raw redis-py and cashews, in one run.

Every variant reads the same warm 10-field JSON dict from the same Redis, sequentially:

- ``raw``: ``json.loads(await r.get(key))`` on redis.asyncio with its defaults (the baseline,
  = 1), which bound every read and write by a 5 s socket timeout, as aegis (0.25 s) and cashews
  (1 s) do;
- ``raw_unbounded``: the same with ``socket_timeout=None``: redis-py's floor, for scale only
  (a hung server would hang it forever);
- ``aegis``: a hit through ``@cached`` (key built from the arguments, metrics, fail-open guard,
  the JSON validated into the declared ``dict[str, str]``);
- ``cashews``: a hit through cashews' ``@cache`` on its Redis backend with its defaults (a
  pickled value) when cashews is installed (``pip install cashews``);
- ``near``: a hot hit through ``@cached`` with the near cache on (in process, kept coherent by
  Redis's invalidation messages).

Batches: one ``get_many`` of 100 keys vs raw ``MGET`` + ``json.loads``, and 100 sequential raw
GETs for scale. Rounds are interleaved (the order rotates) and each ratio is the median of the
per-round ratios, so a noisy neighbour hurts both sides of a ratio alike.

Usage: .venv/bin/python benchmarks/cache_hits.py [--url redis://127.0.0.1:6379/0]
       [--calls 20000] [--batches 300] [--rounds 7]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, cast

import redis.asyncio as redis
from _results import Results, add_json_argument, figure
from prometheus_client import CollectorRegistry
from redis.utils import HIREDIS_AVAILABLE

from aegis.cache import Cache, CacheSettings

VALUE = {f"field_{i}": f"value number {i}" for i in range(10)}
Loop = Callable[[], Awaitable[None]]


async def timed(loop: Loop) -> float:
    """Seconds ``loop`` takes."""
    start = time.perf_counter()
    await loop()
    return time.perf_counter() - start


async def build(url: str, calls: int, batches: int) -> tuple[dict[str, Loop], list[Any]]:
    """Set up every variant on warm keys; return the timed loops and what to close."""
    prefix = f"bench:{uuid.uuid4().hex[:8]}:"
    raw = redis.Redis.from_url(url)
    unbounded = redis.Redis.from_url(url, socket_timeout=None)
    await raw.set(prefix + "raw", json.dumps(VALUE))
    keys = [f"{prefix}many:{i}" for i in range(100)]
    await raw.mset({key: json.dumps(VALUE) for key in keys})

    cache = Cache(CacheSettings(url=url, namespace=prefix + "aegis"), registry=CollectorRegistry())
    near = Cache(
        CacheSettings(url=url, namespace=prefix + "near", near_cache=True),
        registry=CollectorRegistry(),
    )
    await near.start()
    many = [f"m{i}" for i in range(100)]
    await cache.set_many(dict.fromkeys(many, VALUE), ttl=3600)

    @cache.cached(ttl=3600)
    async def load(user_id: int) -> dict[str, str]:
        return VALUE

    @near.cached(ttl=3600)
    async def load_near(user_id: int) -> dict[str, str]:
        return VALUE

    await load(1)
    await load(1)
    # The invalidation message for our own first write arrives asynchronously and may drop the
    # first near entry: read until the entry is served in process.
    for _ in range(1000):
        await load_near(1)
        if near.stats().near_hits:
            break
        await asyncio.sleep(0.001)
    if cache.stats().hits != 1 or not near.stats().near_hits:
        raise RuntimeError("the warm-up did not produce hits: the figures would be misses")

    async def raw_get() -> None:
        for _ in range(calls):
            json.loads(cast("bytes", await raw.get(prefix + "raw")))

    async def raw_unbounded() -> None:
        for _ in range(calls):
            json.loads(cast("bytes", await unbounded.get(prefix + "raw")))

    async def aegis_hit() -> None:
        for _ in range(calls):
            await load(1)

    async def near_hit() -> None:
        for _ in range(calls * 10):  # ten times the calls: a loop of 20k lasts only ~50 ms
            await load_near(1)

    async def raw_mget() -> None:
        for _ in range(batches):
            [json.loads(cast("bytes", value)) for value in await raw.mget(keys)]

    async def aegis_get_many() -> None:
        for _ in range(batches):
            await cache.get_many(many)

    async def raw_sequential() -> None:
        for _ in range(batches // 10):
            [json.loads(cast("bytes", await raw.get(key))) for key in keys]

    loops: dict[str, Loop] = {
        "raw": raw_get,
        "raw_unbounded": raw_unbounded,
        "aegis": aegis_hit,
        "near": near_hit,
        "raw_mget": raw_mget,
        "get_many": aegis_get_many,
        "raw_100_get": raw_sequential,
    }
    closers: list[Any] = [raw, unbounded, cache, near]
    if importlib.util.find_spec("cashews") is not None:
        from cashews import Cache as CashewsCache  # optional peer

        peer = CashewsCache()
        peer.setup(url)

        @peer(ttl="1h", key=prefix + "cashews:{user_id}")
        async def load_cashews(user_id: int) -> dict[str, str]:
            return VALUE

        await load_cashews(1)

        async def cashews_hit() -> None:
            for _ in range(calls):
                await load_cashews(1)

        loops["cashews"] = cashews_hit
        closers.append(peer)
    return loops, closers


async def main_async(
    url: str, calls: int, batches: int, rounds: int, json_path: Path | None = None
) -> None:
    """Run interleaved rounds of every variant and print per-call figures and ratios."""
    loops, closers = await build(url, calls, batches)
    names = list(loops)
    per_round: list[dict[str, float]] = []
    for round_number in range(rounds):
        shift = round_number % len(names)
        order = names[shift:] + names[:shift]
        per_round.append({name: await timed(loops[name]) for name in order})
    # Per-call (or per-batch) seconds, so loops of different lengths compare.
    counts = {
        "raw": calls,
        "raw_unbounded": calls,
        "aegis": calls,
        "cashews": calls,
        "near": calls * 10,
        "raw_mget": batches,
        "get_many": batches,
        "raw_100_get": batches // 10,
    }
    unit = [{name: seconds / counts[name] for name, seconds in row.items()} for row in per_round]

    def median(name: str) -> float:
        return statistics.median(row[name] for row in unit)

    def ratio(base: str, name: str) -> float:
        """Throughput of ``name`` relative to ``base``: >1 is faster than ``base``."""
        return statistics.median(row[base] / row[name] for row in unit)

    print(f"redis-py hiredis parser: {HIREDIS_AVAILABLE}; {rounds} rounds, {calls} calls each")
    print(f"{'variant':<34}{'calls/s':>12}{'µs/call':>10}{'ratio':>22}")
    rows = [
        ("raw GET + json.loads", "raw", "raw", "x raw"),
        ("  the same, no socket timeout", "raw_unbounded", "raw", "x raw"),
        ("@cached hit", "aegis", "raw", "x raw"),
        ("cashews @cache hit", "cashews", "raw", "x raw"),
        ("@cached hot hit, near cache", "near", "raw", "x raw"),
        ("raw MGET 100 + json.loads", "raw_mget", "raw_mget", "x raw MGET"),
        ("get_many(100)", "get_many", "raw_mget", "x raw MGET"),
        ("100 sequential raw GETs", "raw_100_get", "raw_mget", "x raw MGET"),
    ]
    for label, name, base, suffix in rows:
        if name not in loops:
            continue
        seconds = median(name)
        figures = f"{1 / seconds:>12,.0f}{seconds * 1e6:>10.1f}{ratio(base, name):>14.2f}"
        print(f"{label:<34}{figures} {suffix}")
    if "cashews" in loops:
        print(f"@cached hit vs cashews hit: {ratio('cashews', 'aegis'):.2f}x")
    results = Results("aegis-cache", "cache_hits", ["redis", "hiredis", "cashews"])
    peers = [figure("cashews @cache", 1 / median("cashews"))] if "cashews" in loops else []
    results.case(
        "cache hit, 10-field JSON",
        "calls/s",
        aegis=figure("@cached", 1 / median("aegis")),
        raw=figure("GET + json.loads", 1 / median("raw")),
        peers=peers,
    )
    results.case(
        "hot hit, near cache",
        "calls/s",
        aegis=figure("@cached near cache", 1 / median("near")),
        raw=figure("GET + json.loads", 1 / median("raw")),
        peers=peers,
    )
    results.case(
        "100 keys in one batch",
        "batches/s",
        aegis=figure("get_many(100)", 1 / median("get_many")),
        raw=figure("MGET + json.loads", 1 / median("raw_mget")),
    )
    results.write(json_path)
    for closer in closers:
        await closer.aclose() if isinstance(closer, redis.Redis) else await closer.close()


def main() -> None:
    """Parse the options and run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=7)
    add_json_argument(parser)
    options = parser.parse_args()
    asyncio.run(
        main_async(options.url, options.calls, options.batches, options.rounds, options.json)
    )


if __name__ == "__main__":
    main()

"""Revocation figures for auth_verify.py: the hot path with each store, and propagation time.

- ``nowait_rates``: what ``AuthMiddleware`` does for a token it verified before
  (``verify_nowait``, then ``await verify`` only when that returns ``None``), per store: none,
  ``MemoryTokenStore``, a started ``ReplicatedTokenStore`` (answers from memory) and a
  ``RedisTokenStore`` (one ``MGET`` per request, the only choice across processes before).
- ``propagation``: a revocation written through a ``RedisTokenStore`` in this process (the
  issuing service) until a ``ReplicatedTokenStore`` in another process (a service verifying the
  same issuer's tokens) refuses the token from memory; wall-clock stamps on one machine.
"""

from __future__ import annotations

import asyncio
import functools
import json
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable

from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from aegis.auth import (
    JWTKey,
    KeySet,
    MemoryTokenStore,
    Principal,
    RedisTokenStore,
    ReplicatedTokenStore,
    TokenService,
    TokenStore,
)

ISSUER, AUDIENCE = "https://users.example", "users-api"


def timed_sync(call: Callable[[], object], calls: int) -> float:
    """CPU seconds per call of ``call`` over ``calls`` calls."""
    call()
    started = time.process_time()
    for _ in range(calls):
        call()
    return (time.process_time() - started) / calls


async def nowait_rates(url: str, calls: int, rounds: int) -> dict[str, float]:
    """Cached EdDSA verifications per second (CPU) through the middleware's path, per store."""
    prefix = f"bench:{uuid.uuid4().hex[:8]}:"
    client = Redis.from_url(url)
    replica = ReplicatedTokenStore(client, prefix=prefix, metrics_registry=CollectorRegistry())
    if not await replica.start():
        raise SystemExit(f"the replica did not load from {url}")
    keys = KeySet([JWTKey.generate("k1", "EdDSA")])
    stores: dict[str, TokenStore | None] = {
        "no store": None,
        "MemoryTokenStore": MemoryTokenStore(),
        "ReplicatedTokenStore": replica,
        "RedisTokenStore": RedisTokenStore(client, prefix=prefix),
    }
    services = {
        name: TokenService(
            keys,
            issuer=ISSUER,
            audience=AUDIENCE,
            store=store,
            metrics_registry=CollectorRegistry(),
        )
        for name, store in stores.items()
    }
    token = services["no store"].issue_access_token("user-1", roles=["user"], family="login-1")
    best = dict.fromkeys(services, float("inf"))
    try:
        for service in services.values():
            await service.verify(token)
        for _ in range(rounds):
            for name, service in services.items():
                if name == "RedisTokenStore":
                    best[name] = min(
                        best[name], await timed_middleware_path(service, token, calls // 20)
                    )
                    continue
                check = functools.partial(service.verify_nowait, token)
                if not isinstance(check(), Principal):
                    raise SystemExit(f"{name}: verify_nowait did not answer from memory")
                best[name] = min(best[name], timed_sync(check, calls))
                await asyncio.sleep(0)  # the replica's heartbeat runs between rounds
    finally:
        await replica.close()
        await client.aclose()
    return {name: 1 / seconds for name, seconds in best.items()}


async def timed_middleware_path(service: TokenService, token: str, calls: int) -> float:
    """CPU seconds per ``verify_nowait`` then ``await verify``, as AuthMiddleware does."""
    started = time.process_time()
    for _ in range(calls):
        if service.verify_nowait(token) is None:
            await service.verify(token)
    return (time.process_time() - started) / calls


_WATCHER = """
import asyncio, sys, time
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis
from aegis.auth import ReplicatedTokenStore

async def main(url, prefix):
    client = Redis.from_url(url)
    store = ReplicatedTokenStore(client, prefix=prefix, metrics_registry=CollectorRegistry())
    assert await store.start()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print("ready", flush=True)
    while line := (await reader.readline()).decode().strip():
        print("watching", flush=True)
        while not store.revoked_nowait(line, None):
            await asyncio.sleep(0)
        print(repr(time.time()), flush=True)
    await store.close()
    await client.aclose()

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


async def propagation(url: str, trials: int) -> list[float]:
    """Seconds from the start of ``revoke`` here to the refusal in another process."""
    prefix = f"bench:{uuid.uuid4().hex[:8]}:"
    watcher = subprocess.Popen(
        [sys.executable, "-c", _WATCHER, url, prefix],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert watcher.stdin is not None  # PIPE
    assert watcher.stdout is not None  # PIPE
    client = Redis.from_url(url)
    writer = RedisTokenStore(client, prefix=prefix)
    delays = []
    try:
        if watcher.stdout.readline().strip() != "ready":
            raise SystemExit("the watching process did not start")
        for trial in range(trials):
            jti = f"jti-{trial}"
            watcher.stdin.write(jti + "\n")
            watcher.stdin.flush()
            watcher.stdout.readline()  # "watching"
            started = time.time()
            await writer.revoke(jti, expires_at=int(started) + 60)
            seen = float(watcher.stdout.readline())
            delays.append(seen - started)
    finally:
        watcher.stdin.close()
        watcher.wait(timeout=10)
        await client.aclose()
    return delays


def percentiles(delays: list[float]) -> dict[str, float]:
    """p50, p90, p99 and max of ``delays``, in milliseconds."""
    ordered = sorted(delays)
    cuts = statistics.quantiles(ordered, n=100, method="inclusive")
    return {
        "p50": cuts[49] * 1e3,
        "p90": cuts[89] * 1e3,
        "p99": cuts[98] * 1e3,
        "max": ordered[-1] * 1e3,
    }


if __name__ == "__main__":  # a quick look: python benchmarks/_auth_revocation.py [URL]
    target = sys.argv[1] if len(sys.argv) > 1 else "redis://127.0.0.1:6379/0"
    print(json.dumps(asyncio.run(nowait_rates(target, 20000, 3)), indent=1))
    print(json.dumps(percentiles(asyncio.run(propagation(target, 200))), indent=1))

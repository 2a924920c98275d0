"""ReplicatedTokenStore on a real Redis Cluster: one slot per prefix, and a failover survived.

Every key and the channel of a prefix share a hash tag, so one node holds them: the revocation
stays one atomic step (a script, as MULTI cannot hold a PUBLISH on a cluster) and the heartbeat
on the subscription still proves the replica complete.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisClusterException, RedisError

from aegis.auth import RedisTokenStore, ReplicatedTokenStore
from aegis.testing import RedisClusterTopology, unique_name

pytestmark = [pytest.mark.anyio, pytest.mark.scaleout]
DEADLINE = 5.0  # seconds a revocation may take to arrive (it takes ms)
FAILOVER_DEADLINE = 30.0  # seconds for a failover and the replica's reconnection
Stores = Callable[[], Awaitable[tuple[RedisTokenStore, ReplicatedTokenStore]]]


async def eventually(condition: Callable[[], object], timeout: float = DEADLINE) -> None:
    """Return once ``condition()`` is true; fail after ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.005)


def until(seconds: float) -> int:
    return int(time.time() + seconds)


@pytest.fixture
async def stores(redis_cluster: RedisClusterTopology) -> AsyncIterator[Stores]:
    """A writer's store and a replica on the cluster, each on a client of its own."""
    prefix = unique_name("auth") + ":"
    clients: list[RedisCluster] = []
    replicas: list[ReplicatedTokenStore] = []

    async def make() -> tuple[RedisTokenStore, ReplicatedTokenStore]:
        writer_client, replica_client = (
            RedisCluster.from_url(redis_cluster.client_url, socket_timeout=1.0) for _ in "ab"
        )
        clients.extend((writer_client, replica_client))
        replica = ReplicatedTokenStore(replica_client, prefix=prefix, max_staleness=2.0)
        replicas.append(replica)
        return RedisTokenStore(writer_client, prefix=prefix), replica

    yield make
    for replica in replicas:
        await replica.close()
    for client in clients:
        await client.aclose()


async def test_revocations_reach_a_replica_and_live_in_one_slot(
    stores: Stores, redis_cluster: RedisClusterTopology
) -> None:
    writer, replica = await stores()
    assert writer.prefix.startswith("{")
    assert writer.prefix.endswith(":}")
    await writer.revoke("before-start", expires_at=until(60))  # found by the start's scan
    assert await replica.start(timeout=FAILOVER_DEADLINE)  # loaded; bounded for a busy machine
    assert replica.revoked_nowait("before-start", None) is True

    await writer.revoke("jti-1", expires_at=until(60))  # arrives on the channel
    await writer.revoke_family("family-1", expires_at=until(60))
    await eventually(lambda: replica.revoked_nowait("jti-1", None))
    await eventually(lambda: replica.revoked_nowait("another", "family-1"))
    assert await writer.is_revoked("another", "family-1")  # MGET: both keys in one slot
    assert not await writer.is_revoked("another", "family-2")
    assert await writer.consume("refresh-1", expires_at=until(60))
    assert not await writer.consume("refresh-1", expires_at=until(60))

    keys = [writer.key("jti", "jti-1"), writer.key("family", "family-1"), writer.channel]
    assert len({redis_cluster.primary_for(key) for key in keys}) == 1


async def test_the_replica_follows_again_after_the_primary_of_its_slot_fails(
    stores: Stores, redis_cluster: RedisClusterTopology
) -> None:
    writer, replica = await stores()
    assert await replica.start(timeout=FAILOVER_DEADLINE)  # loaded; bounded for a busy machine
    # The writer's client has learned the cluster, as a serving client has: a client first
    # used after the kill knows only its URL's node, which is the victim for a third of the
    # prefixes (one slot in three), and can reach no node at all.
    assert not await writer.is_revoked("before-failover", None)
    victim = redis_cluster.primary_for(writer.channel)
    redis_cluster.kill(victim)
    try:
        async with asyncio.timeout(FAILOVER_DEADLINE):
            while True:  # the writer's client finds the promoted replica by itself
                try:
                    await writer.revoke("after-failover", expires_at=until(60))
                    break
                # The slot has no primary yet, or the client's topology refresh found no
                # node answering (redis-py's RedisClusterException): try again.
                except (RedisError, RedisClusterException):
                    await asyncio.sleep(0.1)
        await eventually(lambda: replica.revoked_nowait("after-failover", None), FAILOVER_DEADLINE)
        assert redis_cluster.primary_for(writer.channel) != victim
    finally:
        await asyncio.to_thread(redis_cluster.start_node, victim)
        await asyncio.to_thread(redis_cluster.wait_healthy, FAILOVER_DEADLINE)

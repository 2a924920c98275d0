"""The pytest plugin: real PostgreSQL, Redis and Kafka for any test, isolated per test or module.

Registered through the ``pytest11`` entry point, so installing aegis-testing is enough.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterator, Mapping
from types import FrameType
from typing import Any, TypeVar

import pytest

from aegis.testing._isolation import (
    create_database,
    create_topics,
    delete_keys,
    delete_topics,
    drop_database,
    unique_name,
)
from aegis.testing._postgres_replica import PostgresReplicaTopology
from aegis.testing._redis_topologies import RedisClusterTopology, RedisSentinelTopology
from aegis.testing._servers import ServiceKind, ServiceStartError
from aegis.testing._services import service_url
from aegis.testing._topology import Topology

logger = logging.getLogger("aegis.testing")

TopologyT = TypeVar("TopologyT", bound=Topology)

SCALEOUT_MARKER = "scaleout: a test on a multi-node topology (replica, cluster, sentinel)"
_STARTUPS = pytest.StashKey[dict[str, float]]()
_STARTUPS_KEY = "aegis_topology_startups"

KafkaTopicFactory = Callable[..., str]
"""``kafka_topic_factory(name="topic", *, partitions=1, config=None) -> str``."""


def _session_service(kind: ServiceKind) -> Iterator[str]:
    _stop_cleanly_on_sigterm()
    try:
        with service_url(kind) as url:
            yield url
    except ServiceStartError as exc:
        pytest.exit(str(exc), returncode=pytest.ExitCode.INTERNAL_ERROR)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a PostgreSQL server for the whole session (``AEGIS_TEST_POSTGRES_URL`` or embedded).

    Connect to it as an administrator; use ``postgres_database`` for a database of your own.
    """
    yield from _session_service("postgres")


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """URL of a Redis-protocol server for the whole session (``AEGIS_TEST_REDIS_URL`` or embedded).

    Shared by every test: keep your keys under ``redis_prefix``.
    """
    yield from _session_service("redis")


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """``host:port`` of a Kafka-protocol broker (``AEGIS_TEST_KAFKA_BOOTSTRAP`` or embedded Tansu).

    Shared by every test: use ``kafka_topic`` or ``kafka_topic_factory`` for your topics.
    """
    yield from _session_service("kafka")


@pytest.fixture(scope="module")
def postgres_database(postgres_url: str) -> Iterator[str]:
    """URL of a fresh, empty PostgreSQL database for this test module, dropped afterwards.

    One database per module keeps CREATE DATABASE (about 0.1-0.3 s) off each test, while tests
    in different modules can never see each other's tables, even when they commit.
    """
    name = unique_name("aegis_test")
    url = create_database(postgres_url, name)
    yield url
    drop_database(postgres_url, name)


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A unique key prefix (``aegis-test:<hex>:``) for this test; its keys are deleted after it."""
    prefix = unique_name("aegis-test", separator=":") + ":"
    yield prefix
    delete_keys(redis_url, prefix)


@pytest.fixture
def kafka_topic_factory(kafka_bootstrap: str) -> Iterator[KafkaTopicFactory]:
    """Create uniquely named Kafka topics for this test; all are deleted afterwards.

    ``kafka_topic_factory("orders", partitions=3)`` returns a name like ``aegis-test-orders-<hex>``.
    """
    created: list[str] = []

    def create(
        name: str = "topic", *, partitions: int = 1, config: Mapping[str, str] | None = None
    ) -> str:
        topic = unique_name(f"aegis-test-{name}", separator="-")
        create_topics(kafka_bootstrap, [topic], partitions=partitions, config=config)
        created.append(topic)
        return topic

    yield create
    delete_topics(kafka_bootstrap, created)


@pytest.fixture
def kafka_topic(kafka_topic_factory: KafkaTopicFactory) -> str:
    """One new, single-partition Kafka topic for this test, deleted afterwards."""
    return kafka_topic_factory()


@pytest.fixture
def kafka_consumer_config(kafka_bootstrap: str) -> dict[str, Any]:
    """confluent-kafka consumer settings for tests: a fresh group that joins in ~3 s, not ~23 s.

    The group id is unique per test and ``auto.offset.reset`` is ``earliest``, so a consumer
    sees what the test produced before it subscribed.
    """
    return {
        "bootstrap.servers": kafka_bootstrap,
        "group.id": unique_name("aegis-test-group", separator="-"),
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 500,
    }


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``scaleout`` marker: ``pytest -m scaleout`` runs the topology tests."""
    config.addinivalue_line("markers", SCALEOUT_MARKER)
    config.stash[_STARTUPS] = {}


def pytest_sessionfinish(session: pytest.Session) -> None:
    """On an xdist worker, hand the topologies' start-up times to the controller's summary."""
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        startups: dict[str, float] = session.config.stash.get(_STARTUPS, {})
        workeroutput[_STARTUPS_KEY] = dict(startups)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """On the xdist controller, collect what a worker reported in ``pytest_sessionfinish``."""
    startups = getattr(node, "workeroutput", {}).get(_STARTUPS_KEY, {})
    node.config.stash.setdefault(_STARTUPS, {}).update(startups)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """Report how long each topology this session started took to become healthy."""
    startups = config.stash.get(_STARTUPS, {})
    if startups:
        terminalreporter.section("aegis-testing topologies")
        for name, seconds in startups.items():
            terminalreporter.write_line(f"{name}: healthy {seconds:.2f}s after start")


def _session_topology(request: pytest.FixtureRequest, topology: TopologyT) -> Iterator[TopologyT]:
    _stop_cleanly_on_sigterm()
    # A topology that cannot start raises ServiceStartError (why, logs, what to install): the
    # tests that asked for it error out, never skip, and the rest of the session runs.
    topology.start()
    try:
        seconds = topology.startup_seconds or 0.0
        request.config.stash[_STARTUPS][topology.name] = seconds
        logger.info("%s topology started in %.2fs", topology.name, seconds)
        yield topology
    finally:
        topology.stop()


@pytest.fixture(scope="session")
def postgres_replica(request: pytest.FixtureRequest) -> Iterator[PostgresReplicaTopology]:
    """A PostgreSQL primary and a streaming replica for the whole session (started on first use).

    ``primary_url``, ``replica_url`` and ``failover_url``; create a database of your own on
    the primary (``create_database``), it reaches the replica too. A test that kills or
    promotes a node must leave the topology as it found it, or start its own
    :class:`~aegis.testing.PostgresReplicaTopology`.
    """
    yield from _session_topology(request, PostgresReplicaTopology())


@pytest.fixture(scope="session")
def redis_cluster(request: pytest.FixtureRequest) -> Iterator[RedisClusterTopology]:
    """A Valkey Cluster of 3 primaries and 3 replicas for the whole session (on first use).

    Shared by every test: keep your keys under ``unique_name`` prefixes, and restart a node
    you killed (``start_node``, then ``wait_healthy``).
    """
    yield from _session_topology(request, RedisClusterTopology())


@pytest.fixture(scope="session")
def redis_sentinel(request: pytest.FixtureRequest) -> Iterator[RedisSentinelTopology]:
    """A Valkey primary, a replica and 3 sentinels for the whole session (on first use).

    Shared by every test: restart a data node you killed (``start_node``, ``wait_healthy``).
    """
    yield from _session_topology(request, RedisSentinelTopology())


def _stop_cleanly_on_sigterm() -> None:
    """Turn SIGTERM into KeyboardInterrupt so pytest tears fixtures down and stops the servers."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return  # someone else decided what SIGTERM means here

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)

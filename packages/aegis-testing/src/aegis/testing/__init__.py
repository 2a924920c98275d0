"""aegis.testing: real PostgreSQL, Redis and Kafka servers for tests, with per-test isolation.

Installing the distribution registers a pytest plugin with the fixtures ``postgres_url``,
``redis_url``, ``kafka_bootstrap`` (one server per session) and ``postgres_database``,
``redis_prefix``, ``kafka_topic``, ``kafka_topic_factory``, ``kafka_consumer_config`` (isolation).
The functions below are the same machinery for use outside pytest.

For tests that need real sockets: :class:`RawConnection` speaks HTTP/1.1 (keep-alive,
pipelining) and WebSocket byte by byte, :func:`uvicorn_server` (``asgi`` extra) serves an app
with a real uvicorn on any of its loops and HTTP implementations, and :class:`LogLines` keeps
the log lines a server thread writes for the test to wait for. :func:`terminal_stderr` puts
standard error on a pseudo-terminal, to test what a command shows a person.

Multi-node topologies for scale-out and failover tests, started from the same wheels:
:class:`PostgresReplicaTopology` (primary + streaming replica), :class:`RedisClusterTopology`
(3 primaries + 3 replicas) and :class:`RedisSentinelTopology` (primary, replica, 3
sentinels), also as the session fixtures ``postgres_replica``, ``redis_cluster`` and
``redis_sentinel``.
"""

import importlib
from typing import TYPE_CHECKING, Any

from aegis.testing.__about__ import __version__
from aegis.testing._http_recorder import HttpRecorder
from aegis.testing._imports import import_error_without, modules_loaded_by
from aegis.testing._isolation import (
    create_database,
    create_topics,
    database_url,
    delete_keys,
    delete_topics,
    drop_database,
    unique_name,
)
from aegis.testing._log_lines import LogLines
from aegis.testing._postgres_replica import PostgresReplicaTopology
from aegis.testing._proxy import TcpProxy
from aegis.testing._raw_http import Headers, RawConnection, RawResponse, http_request
from aegis.testing._redis_topologies import RedisClusterTopology, RedisSentinelTopology
from aegis.testing._servers import (
    SERVICE_KINDS,
    EmbeddedServer,
    RestartableServer,
    ServiceKind,
    ServiceStartError,
    die_with_parent,
    start_server,
)
from aegis.testing._services import (
    SERVICES_VARIABLE,
    URL_VARIABLES,
    check_service,
    redact,
    service_url,
)
from aegis.testing._terminal import TerminalOutput, terminal_stderr
from aegis.testing._topologies import TOPOLOGY_NAMES, TopologyName, start_topology
from aegis.testing._topology import Topology, TopologyNode

if TYPE_CHECKING:
    from aegis.testing._otlp import ExportedSpan, exported_spans
    from aegis.testing._uvicorn import (
        UVICORN_LOOPS,
        UVICORN_PROTOCOLS,
        RunningServer,
        uvicorn_server,
    )

# Names whose modules need an optional dependency (the asgi and otlp extras): imported on first
# use (PEP 562).
_LAZY_NAMES = {
    "UVICORN_LOOPS": "aegis.testing._uvicorn",
    "UVICORN_PROTOCOLS": "aegis.testing._uvicorn",
    "RunningServer": "aegis.testing._uvicorn",
    "uvicorn_server": "aegis.testing._uvicorn",
    "ExportedSpan": "aegis.testing._otlp",
    "exported_spans": "aegis.testing._otlp",
}


def __getattr__(name: str) -> Any:
    module = _LAZY_NAMES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "SERVICES_VARIABLE",
    "SERVICE_KINDS",
    "TOPOLOGY_NAMES",
    "URL_VARIABLES",
    "UVICORN_LOOPS",
    "UVICORN_PROTOCOLS",
    "EmbeddedServer",
    "ExportedSpan",
    "Headers",
    "HttpRecorder",
    "LogLines",
    "PostgresReplicaTopology",
    "RawConnection",
    "RawResponse",
    "RedisClusterTopology",
    "RedisSentinelTopology",
    "RestartableServer",
    "RunningServer",
    "ServiceKind",
    "ServiceStartError",
    "TcpProxy",
    "TerminalOutput",
    "Topology",
    "TopologyName",
    "TopologyNode",
    "__version__",
    "check_service",
    "create_database",
    "create_topics",
    "database_url",
    "delete_keys",
    "delete_topics",
    "die_with_parent",
    "drop_database",
    "exported_spans",
    "http_request",
    "import_error_without",
    "modules_loaded_by",
    "redact",
    "service_url",
    "start_server",
    "start_topology",
    "terminal_stderr",
    "unique_name",
    "uvicorn_server",
]

"""The public names of aegis.testing: an addition or removal shows up here in review."""

from __future__ import annotations

import aegis.testing


def test_public_names_are_exactly_these() -> None:
    assert aegis.testing.__all__ == [
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


def test_every_public_name_resolves_and_uvicorn_loads_only_on_use() -> None:
    for name in aegis.testing.__all__:
        assert getattr(aegis.testing, name) is not None
    loaded = aegis.testing.modules_loaded_by("import aegis.testing")
    assert "uvicorn" not in loaded
    assert "uvicorn" in aegis.testing.modules_loaded_by("from aegis.testing import uvicorn_server")
    assert "opentelemetry.proto" not in loaded
    assert "opentelemetry.proto" in aegis.testing.modules_loaded_by(
        "from aegis.testing import exported_spans"
    )

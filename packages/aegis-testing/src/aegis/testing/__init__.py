"""aegis.testing: real PostgreSQL, Redis and Kafka servers for tests, with per-test isolation.

Installing the distribution registers a pytest plugin with the fixtures ``postgres_url``,
``redis_url``, ``kafka_bootstrap`` (one server per session) and ``postgres_database``,
``redis_prefix``, ``kafka_topic``, ``kafka_topic_factory``, ``kafka_consumer_config`` (isolation).
The functions below are the same machinery for use outside pytest.
"""

from aegis.testing.__about__ import __version__
from aegis.testing._imports import modules_loaded_by
from aegis.testing._isolation import (
    create_database,
    create_topics,
    database_url,
    delete_keys,
    delete_topics,
    drop_database,
    unique_name,
)
from aegis.testing._servers import (
    SERVICE_KINDS,
    EmbeddedServer,
    RestartableServer,
    ServiceKind,
    ServiceStartError,
    start_server,
)
from aegis.testing._services import (
    SERVICES_VARIABLE,
    URL_VARIABLES,
    check_service,
    redact,
    service_url,
)

__all__ = [
    "SERVICES_VARIABLE",
    "SERVICE_KINDS",
    "URL_VARIABLES",
    "EmbeddedServer",
    "RestartableServer",
    "ServiceKind",
    "ServiceStartError",
    "__version__",
    "check_service",
    "create_database",
    "create_topics",
    "database_url",
    "delete_keys",
    "delete_topics",
    "drop_database",
    "modules_loaded_by",
    "redact",
    "service_url",
    "start_server",
    "unique_name",
]

"""Resolve each service to a URL: a configured server that answers, or an embedded one."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import psycopg
import redis
from confluent_kafka.admin import AdminClient

from aegis.testing._servers import ServiceKind, ServiceStartError, start_server

URL_VARIABLES: dict[ServiceKind, str] = {
    "postgres": "AEGIS_TEST_POSTGRES_URL",
    "redis": "AEGIS_TEST_REDIS_URL",
    "kafka": "AEGIS_TEST_KAFKA_BOOTSTRAP",
}
"""The environment variable that points the tests at an already running server, per service."""

SERVICES_VARIABLE = "AEGIS_TEST_SERVICES"
"""Set to ``embedded`` to start embedded servers even where ``URL_VARIABLES`` are set."""

_PROBE_TIMEOUT_SECONDS = 5


@contextmanager
def service_url(kind: ServiceKind, environ: Mapping[str, str] | None = None) -> Iterator[str]:
    """Yield the URL of a ``kind`` server that answers; an embedded one lives for the block.

    The server named by the service's ``AEGIS_TEST_*`` variable is used when set (unless
    ``AEGIS_TEST_SERVICES=embedded``); otherwise an embedded server starts and is stopped and
    deleted when the block exits, even by an exception.

    Raises:
        ServiceStartError: the configured server does not answer (the message names the
            variable), or the embedded server could not start.
    """
    environ = os.environ if environ is None else environ
    variable = URL_VARIABLES[kind]
    configured = environ.get(variable, "")
    if configured and environ.get(SERVICES_VARIABLE, "") != "embedded":
        try:
            check_service(kind, configured)
        except Exception as exc:
            raise ServiceStartError(
                f"{variable}={redact(configured)} is set, but that {kind} server does not "
                f"answer: {exc}\nStart it, fix the variable, or unset it to use an embedded one."
            ) from exc
        yield configured
        return
    server = start_server(kind)
    try:
        yield server.url
    finally:
        server.stop()


def check_service(kind: ServiceKind, url: str) -> None:
    """Make one real request to the ``kind`` server at ``url``; raise if it does not answer."""
    if kind == "postgres":
        with psycopg.connect(url, connect_timeout=_PROBE_TIMEOUT_SECONDS) as connection:
            connection.execute("SELECT 1")
    elif kind == "redis":
        with redis.Redis.from_url(url, socket_timeout=_PROBE_TIMEOUT_SECONDS) as client:
            client.ping()
    else:
        admin = AdminClient({"bootstrap.servers": url, "socket.timeout.ms": 2000})
        admin.list_topics(timeout=_PROBE_TIMEOUT_SECONDS)


def redact(url: str) -> str:
    """Return ``url`` with any password replaced by ``***``, fit for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))

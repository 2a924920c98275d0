"""Give each test its own database, Redis key prefix and Kafka topics on a shared server."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from urllib.parse import urlsplit, urlunsplit

import psycopg
import redis
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic
from psycopg import sql

_ADMIN_TIMEOUT_SECONDS = 30.0


def unique_name(prefix: str, separator: str = "_") -> str:
    """Return ``prefix`` plus a random 12-hex-digit suffix: unique across runs and processes."""
    return f"{prefix}{separator}{uuid.uuid4().hex[:12]}"


def database_url(server_url: str, database: str) -> str:
    """Return ``server_url`` pointing at ``database`` instead (host, user and options kept)."""
    return urlunsplit(urlsplit(server_url)._replace(path=f"/{database}"))


def create_database(server_url: str, database: str) -> str:
    """Create an empty ``database`` on the PostgreSQL server at ``server_url``; return its URL."""
    with psycopg.connect(server_url, autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    return database_url(server_url, database)


def drop_database(server_url: str, database: str) -> None:
    """Drop ``database``, closing connections a test left open (PostgreSQL 13+)."""
    with psycopg.connect(server_url, autocommit=True) as connection:
        statement = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
        connection.execute(statement.format(sql.Identifier(database)))


def delete_keys(redis_url: str, prefix: str) -> int:
    """Delete every key that starts with ``prefix``; return how many there were.

    Uses ``SCAN`` (never ``KEYS``), so a large keyspace does not block the server.
    """
    deleted = 0
    pattern = _escape_glob(prefix) + "*"
    with redis.Redis.from_url(url=redis_url) as client:
        batch: list[bytes] = []
        for key in client.scan_iter(match=pattern, count=500):
            batch.append(key)
            if len(batch) == 500:  # one round trip per SCAN page
                deleted += client.unlink(*batch)
                batch.clear()
        if batch:
            deleted += client.unlink(*batch)
    return deleted


def create_topics(
    bootstrap: str,
    topics: list[str],
    *,
    partitions: int = 1,
    config: Mapping[str, str] | None = None,
) -> None:
    """Create ``topics`` on the Kafka broker at ``bootstrap`` and wait until they exist."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    new_topics = [
        NewTopic(topic, num_partitions=partitions, replication_factor=1, config=dict(config or {}))
        for topic in topics
    ]
    for future in admin.create_topics(new_topics).values():
        future.result(timeout=_ADMIN_TIMEOUT_SECONDS)


def delete_topics(bootstrap: str, topics: list[str]) -> None:
    """Delete ``topics`` from the Kafka broker at ``bootstrap`` and wait for it to confirm."""
    if not topics:
        return
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.delete_topics(topics).values():
        future.result(timeout=_ADMIN_TIMEOUT_SECONDS)


def _escape_glob(text: str) -> str:
    return "".join(f"\\{char}" if char in "*?[]\\" else char for char in text)

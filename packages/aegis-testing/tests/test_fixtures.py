"""The fixtures as a user's test sees them, on the servers this session runs against."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
import redis
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient

from aegis.testing import create_topics, delete_keys
from aegis.testing._plugin import KafkaTopicFactory


def test_postgres_database_is_a_fresh_database_of_its_own(
    postgres_url: str, postgres_database: str
) -> None:
    with psycopg.connect(postgres_database) as connection:
        name_row = connection.execute("SELECT current_database()").fetchone()
        tables = connection.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()
        connection.execute("CREATE TABLE note (id int PRIMARY KEY, body text NOT NULL)")
        connection.execute("INSERT INTO note VALUES (1, 'kept for this module')")
    assert name_row is not None
    assert name_row[0].startswith("aegis_test_")
    assert tables == (0,)
    with psycopg.connect(postgres_url) as admin:
        exists = admin.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (name_row[0],)
        ).fetchone()
    assert exists == (1,)


def test_postgres_database_is_shared_within_a_module(postgres_database: str) -> None:
    with psycopg.connect(postgres_database) as connection:
        row = connection.execute("SELECT body FROM note WHERE id = 1").fetchone()
    assert row == ("kept for this module",)


def test_redis_prefix_is_unique_per_test(redis_url: str, redis_prefix: str) -> None:
    assert redis_prefix.startswith("aegis-test:")
    assert redis_prefix.endswith(":")
    with redis.Redis.from_url(redis_url) as client:
        client.set(f"{redis_prefix}user:1", "ada")
        assert client.get(f"{redis_prefix}user:1") == b"ada"
        assert list(client.scan_iter(match=f"{redis_prefix}*")) == [
            f"{redis_prefix}user:1".encode()
        ]


def test_delete_keys_removes_only_the_prefix_even_with_glob_characters(redis_url: str) -> None:
    prefix = "aegis-test:[odd]*:"
    with redis.Redis.from_url(redis_url) as client:
        client.mset({f"{prefix}{n}": n for n in range(1200)})
        client.set("aegis-test:[odd]x:neighbour", "stays")
        try:
            assert delete_keys(redis_url, prefix) == 1200
            assert client.get("aegis-test:[odd]x:neighbour") == b"stays"
            assert client.exists(f"{prefix}7") == 0
        finally:
            client.delete("aegis-test:[odd]x:neighbour")


def test_kafka_round_trip_through_a_consumer_group_with_headers(
    kafka_bootstrap: str, kafka_topic: str, kafka_consumer_config: dict[str, Any]
) -> None:
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    producer.produce(kafka_topic, key=b"user-1", value=b"created", headers={"type": b"user"})
    assert producer.flush(10) == 0

    consumer = Consumer(kafka_consumer_config)
    try:
        consumer.subscribe([kafka_topic])
        message = None
        for _ in range(60):
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                break
        assert message is not None
        assert message.error() is None
        assert (message.key(), message.value()) == (b"user-1", b"created")
        assert message.headers() == [("type", b"user")]
        consumer.commit(message=message, asynchronous=False)
        committed = consumer.committed(consumer.assignment(), timeout=10)
        assert [partition.offset for partition in committed] == [1]
    finally:
        consumer.close()


def test_kafka_topic_factory_creates_named_partitioned_topics(
    kafka_bootstrap: str, kafka_topic_factory: KafkaTopicFactory
) -> None:
    topic = kafka_topic_factory("orders", partitions=3)
    other = kafka_topic_factory("orders", partitions=3)
    assert topic.startswith("aegis-test-orders-")
    assert topic != other
    metadata = AdminClient({"bootstrap.servers": kafka_bootstrap}).list_topics(topic, timeout=10)
    assert len(metadata.topics[topic].partitions) == 3


def test_creating_a_topic_twice_fails_loudly(kafka_bootstrap: str, kafka_topic: str) -> None:
    with pytest.raises(KafkaException, match="TOPIC_ALREADY_EXISTS"):
        create_topics(kafka_bootstrap, [kafka_topic])

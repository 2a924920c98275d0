"""Metadata probes: whether a Kafka broker answers again, and whether topics exist again.

The producer and the consumer use them to tell an outage that goes on from a client that is
stuck on state a broker forgot (a broker restarted empty). A probe is a metadata request made at
most once per interval, so clients waiting on it do not queue requests up.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from confluent_kafka import Consumer, KafkaException, Producer

PROBE_TIMEOUT = 1.0
"""Seconds a broker may take to answer a probe before it counts as still down."""


class MetadataProbe:
    """A metadata request made at most once per ``interval`` seconds.

    Args:
        interval: seconds between two probes at least.
        timeout: seconds to wait for the answer.
    """

    def __init__(self, interval: float, timeout: float = PROBE_TIMEOUT) -> None:
        self.interval = interval
        self.timeout = timeout
        self._next = 0.0

    def due(self) -> bool:
        """Whether ``interval`` has passed since the last probe."""
        return time.monotonic() >= self._next

    def _started(self) -> None:
        self._next = time.monotonic() + self.interval

    def answers(self, client: Producer | Consumer) -> bool:
        """Whether a broker answers a metadata request (for no topic: none is created)."""
        self._started()
        try:
            client.list_topics(timeout=self.timeout)
        except KafkaException:
            return False
        return True

    def existing(self, consumer: Consumer, topics: Iterable[str]) -> set[str]:
        """Which of ``topics`` exist with partitions now.

        One request per topic: a consumer's metadata request never creates a topic (a
        producer's or an admin client's may, where the broker creates topics on demand).
        """
        self._started()
        found = set()
        for topic in topics:
            try:
                metadata = consumer.list_topics(topic, timeout=self.timeout).topics.get(topic)
            except KafkaException:
                continue
            if metadata is not None and metadata.error is None and metadata.partitions:
                found.add(topic)
        return found

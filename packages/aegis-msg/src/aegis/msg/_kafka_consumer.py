"""A Kafka consumer-group member driven from asyncio, which tells when it is cut off.

librdkafka reconnects, rejoins the group and resets lost offsets by itself (a broker restarted
empty included). What this module adds:

- telling: the errors librdkafka reports are logged (each name once a minute at most) and
  counted in ``aegis_msg_consumer_errors_total{group,error}``, and the subscriber hears when
  all brokers are down and when one answers again (a fetched message, or a metadata probe once
  a second, then a few heartbeats for the group to say whether it still knows this member);
- a replacement: a subscribed topic found missing (a broker restarted empty) that exists
  again is noticed by a probe every two seconds, and the client is replaced by a fresh one
  (WARNING, ``aegis_msg_consumer_recreated_total{group,reason}``). librdkafka's own rebalance
  on the topic's return was seen to assign nothing of it (confluent-kafka 2.16, eager
  assignors, Tansu); a fresh member's join assigns it. After partitions were lost, every
  subscribed topic the next assignment leaves out counts as missing, as the client's metadata
  may be stale; so a group whose broker came back empty gets one fresh client once its topics
  exist (in a group of several members that costs one more rebalance).

A fatal consumer error (another instance took over its ``group.instance.id``) is not met with a
fresh client, which would only fence the other one back: it is logged at ERROR and the
subscriber's readiness check fails.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message
from confluent_kafka import TopicPartition as KafkaTopicPartition

from aegis.msg._kafka_probe import MetadataProbe
from aegis.msg._metrics import MsgMetrics
from aegis.msg._transport import Fetched, RebalanceHooks, TopicPartition

logger = logging.getLogger("aegis.msg")

# While all brokers are down, how often a metadata request checks whether one answers again;
# while subscribed topics are missing, how often one checks whether they exist again.
_BROKER_PROBE_INTERVAL = 1.0
_TOPIC_PROBE_INTERVAL = 2.0
# librdkafka reports a refused connection on every reconnect attempt: one WARNING per error
# name in this many seconds, the repeats at DEBUG.
_REPEAT_WARNING_AFTER = 60.0
_LAG_EVERY = 1.0  # seconds between two readings of the lag gauge


class KafkaConsumerChannel:
    """One consumer-group member. Every client call runs on one worker thread of its own.

    librdkafka calls the rebalance and error callbacks on that thread inside ``consume()``;
    they hand over to the event loop (where the subscriber's state lives) and wait for it.
    Revocation finishes in-flight handlers and commits before the partitions are released.

    Args:
        config: librdkafka consumer settings (``group.id`` at least).
        topics: the topics to subscribe to.
        hooks: the subscriber, told about rebalances and outages.
        metrics: where ``aegis_msg_consumer_errors_total`` is counted.
    """

    def __init__(
        self,
        config: dict[str, Any],
        topics: list[str],
        hooks: RebalanceHooks,
        *,
        metrics: MsgMetrics,
    ) -> None:
        self._config = {**config, "error_cb": self._on_error}
        self._group = str(config.get("group.id", ""))
        self._topics = topics
        self._hooks = hooks
        self._metrics = metrics
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="aegis-msg-consumer")
        self._consumer: Consumer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._brokers_down = False
        self._failed = False
        self._broker_probe = MetadataProbe(_BROKER_PROBE_INTERVAL)
        self._topic_probe = MetadataProbe(_TOPIC_PROBE_INTERVAL)
        self._missing: set[str] = set()  # subscribed topics found missing
        self._settled = False  # assigned since the last revocation or loss: not rebalancing
        self._forgotten = False  # partitions lost since the last assignment
        self.recreated = 0
        """How many times the client was replaced by a fresh one."""
        self._confirm_at: float | None = None
        # A group coordinator that forgot this member says so at the next heartbeats.
        self._confirm_after = 3 * int(config.get("heartbeat.interval.ms", 3000)) / 1000
        self._warned_at: dict[str, float] = {}
        self.revoke_timeout = 30.0
        self._lag_due = 0.0  # monotonic time the lag gauge is read again

    async def start(self) -> None:
        """Create the consumer and subscribe (the group join happens during the first fetch)."""
        self._loop = asyncio.get_running_loop()
        await self._loop.run_in_executor(self._executor, self._subscribe)

    def _subscribe(self) -> None:
        self._consumer = Consumer(self._config)
        self._consumer.subscribe(
            self._topics,
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )

    def _on_assign(self, consumer: Consumer, partitions: list[KafkaTopicPartition]) -> None:
        # A subscribed topic left out is another member's, or missing: asked before the
        # subscriber hears of the assignment (it re-creates its retry topics after an outage).
        # After a loss, every one left out is checked again: the client's metadata may be
        # stale (a broker restarted empty), and it was seen to assign nothing of a topic
        # that was re-created meanwhile.
        # With cooperative assignors ``partitions`` are only the new ones: add what it holds.
        assigned = {p.topic for p in partitions} | {p.topic for p in consumer.assignment()}
        self._missing -= assigned
        left_out = set(self._topics) - assigned
        if left_out and self._forgotten:
            self._missing |= left_out
        elif left_out:
            self._missing |= left_out - self._topic_probe.existing(consumer, left_out)
        self._settled = True
        self._forgotten = False
        self._on_loop(self._hooks.assigned, _listed(partitions))

    def _on_lost(self, consumer: Consumer, partitions: list[KafkaTopicPartition]) -> None:
        self._settled = False
        self._forgotten = True
        self._on_loop(self._hooks.lost, _listed(partitions))

    def _on_revoke(self, consumer: Consumer, partitions: list[KafkaTopicPartition]) -> None:
        assert self._loop is not None  # set by start()
        self._settled = False
        revoked = _listed(partitions)
        future = asyncio.run_coroutine_threadsafe(self._hooks.revoked(revoked), self._loop)
        try:
            commits = future.result(timeout=self.revoke_timeout)
        except Exception:
            logger.exception("finishing in-flight events of revoked partitions failed")
            return
        self._commit(commits)

    def _on_loop(self, hook: Callable[..., None], *args: Any) -> None:
        """Run a subscriber hook on the event loop and wait for it (librdkafka's thread here)."""
        assert self._loop is not None  # set by start()
        asyncio.run_coroutine_threadsafe(_call(hook, *args), self._loop).result()

    def _on_error(self, error: KafkaError) -> None:
        name = error.name()
        self._metrics.consumer_errors.labels(self._group, name).inc()
        if error.fatal():
            # Only another member with this group.instance.id causes it: this one must stop.
            logger.error("kafka consumer of group %s failed for good: %s", self._group, error)
            self._failed = True
            self._on_loop(self._hooks.unavailable, f"{name}: {error.str()} (fatal)")
            return
        self._warn(name, error)
        if error.code() == KafkaError._ALL_BROKERS_DOWN and not self._brokers_down:
            self._brokers_down = True
            self._on_loop(self._hooks.unavailable, f"{name}: {error.str()}")

    def _warn(self, name: str, error: KafkaError) -> None:
        now = time.monotonic()
        if now - self._warned_at.get(name, -_REPEAT_WARNING_AFTER) >= _REPEAT_WARNING_AFTER:
            self._warned_at[name] = now
            logger.warning("kafka consumer of group %s: %s", self._group, error)
        else:
            logger.debug("kafka consumer of group %s: %s", self._group, error)

    def _check_brokers(self, consumer: Consumer, fetched: bool) -> None:
        """After all brokers were down: available again once one answers and the group agrees.

        A broker that answers again may have forgotten this member (a restart, a session
        timeout); the next heartbeats tell, as partitions lost, within a few heartbeats. So the
        outage is over only after those, unless messages arrive first.
        """
        if self._failed or not self._brokers_down:
            return
        now = time.monotonic()
        if self._confirm_at is None:
            if fetched or (self._broker_probe.due() and self._broker_probe.answers(consumer)):
                self._confirm_at = now + self._confirm_after
            return
        if fetched or now >= self._confirm_at:
            self._brokers_down = False
            self._confirm_at = None
            self._warned_at.clear()  # the next outage is reported afresh
            self._on_loop(self._hooks.available)

    def _commit(self, commits: Mapping[TopicPartition, int], *, wait: bool = True) -> None:
        if not commits or self._consumer is None:
            return
        offsets = [KafkaTopicPartition(t, p, o) for (t, p), o in commits.items()]
        try:
            if wait:
                self._consumer.commit(offsets=offsets, asynchronous=False)
            else:
                self._consumer.commit(offsets=offsets, asynchronous=True)
        except KafkaException as exc:
            # A commit lost to a rebalance only means redelivery: at-least-once holds.
            logger.warning("kafka commit failed: %s", exc)

    async def fetch(
        self, max_messages: int, timeout: float, commits: Mapping[TopicPartition, int]
    ) -> Fetched:
        """Commit ``commits``, then consume up to ``max_messages`` within ``timeout`` seconds."""
        assert self._loop is not None  # set by start()
        return await self._loop.run_in_executor(
            self._executor, self._fetch, max_messages, timeout, dict(commits)
        )

    def _fetch(
        self, max_messages: int, timeout: float, commits: dict[TopicPartition, int]
    ) -> Fetched:
        consumer = self._consumer
        assert consumer is not None  # set by start()
        # Between fetches the commit is not waited for: a round trip per fetch would cap the
        # throughput at one batch per broker latency. A commit lost on the way only means a
        # redelivery; revocation and close() still wait for theirs.
        self._commit(commits, wait=False)
        messages = consumer.consume(max_messages, timeout)
        for message in messages:
            if message.error() is not None:  # seldom: only then a second pass
                messages = self._without_errors(messages)
                break
        self._check_brokers(consumer, bool(messages))
        if self._missing_topics_back(consumer):
            # What the old client fetched was revoked with it: the new member gets it again.
            return Fetched([], {})
        now = time.monotonic()
        if not messages or (len(messages) == max_messages and now < self._lag_due):
            return Fetched(messages, {})
        # The lag gauge: at most once a second while full batches come (a backlog), and for
        # every fetch that is not full (caught up), so the last reading is the current lag.
        self._lag_due = now + _LAG_EVERY
        last: dict[TopicPartition, int] = {
            (message.topic(), message.partition()): message.offset()  # type: ignore[misc]
            for message in messages
        }
        watermarks = {}
        for topic, partition in last:
            _, high = consumer.get_watermark_offsets(
                KafkaTopicPartition(topic, partition), cached=True
            )
            watermarks[(topic, partition)] = high
        return Fetched(messages, watermarks, last)

    def _without_errors(self, fetched: list[Message]) -> list[Message]:
        """The messages of a fetch that are messages; errors among them counted and logged."""
        messages: list[Message] = []
        for message in fetched:
            error = message.error()
            if error is None:
                messages.append(message)
            elif error.code() != KafkaError._PARTITION_EOF:
                self._metrics.consumer_errors.labels(self._group, error.name()).inc()
                self._warn(error.name(), error)
                if error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART and message.topic():
                    self._missing.add(message.topic() or "")  # a subscribed topic is missing
        return messages

    def _missing_topics_back(self, consumer: Consumer) -> bool:
        """Replace the client once a subscribed topic found missing exists again.

        Only between rebalances: a client replaced while it rejoins its group was seen to
        stay out of the group for good (Tansu), and the rejoin's assignment may settle it.
        """
        if self._brokers_down or not self._settled:
            return False
        if not self._missing or not self._topic_probe.due():
            return False
        back = self._topic_probe.existing(consumer, self._missing)
        if back:
            self._recreate(f"subscribed topics {sorted(back)} exist again")
        return bool(back)

    def _recreate(self, why: str) -> None:
        """Leave the group (revocation finishes in-flight handlers and commits), join afresh."""
        logger.warning(
            "kafka consumer of group %s recreated: %s; it joins the group again",
            self._group,
            why,
        )
        self._metrics.consumer_recreated.labels(self._group, "topic_back").inc()
        self.recreated += 1
        self._missing.clear()
        self._settled = False
        self._close({})
        self._subscribe()

    async def close(self, commits: Mapping[TopicPartition, int]) -> None:
        """Commit ``commits`` and leave the group."""
        if self._loop is None:
            return
        try:
            await self._loop.run_in_executor(self._executor, self._close, dict(commits))
        finally:
            self._executor.shutdown(wait=False)

    def _close(self, commits: dict[TopicPartition, int]) -> None:
        self._commit(commits)
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None


def _listed(partitions: Sequence[KafkaTopicPartition]) -> list[TopicPartition]:
    return [(p.topic, p.partition) for p in partitions]


async def _call(hook: Callable[..., None], *args: Any) -> None:
    hook(*args)

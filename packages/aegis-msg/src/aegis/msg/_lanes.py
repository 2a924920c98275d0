"""Lanes: the fetched messages that must run one after another (a partition, or a key of it).

Lanes run concurrently; each runs its messages in order and moves its partition's committable
position (:mod:`aegis.msg._offsets`). :class:`Lanes` also bounds the messages in flight and,
after partitions were lost, holds new lanes back until the handlers still running on the lost
ones have finished.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Sequence

from aegis.msg._offsets import OffsetTracker, PartitionOffsets, Slot
from aegis.msg._transport import ReceivedMessage, TopicPartition

logger = logging.getLogger("aegis.msg")

DrainLane = Callable[["Lane"], Awaitable[None]]
"""Runs a lane's queued messages in order until its queue is empty or its interrupt is set.

It calls :meth:`Lane.finish` as messages finish; the interrupt means a stop, a revocation or a
loss, and what is still queued then is left for redelivery.
"""


class Lane:
    """Messages that must run one after another (a partition, or one key of it).

    A partition's lane moves the partition's committable position itself after each message;
    a key's lane marks a :class:`Slot` per message, since keys of a partition finish out of
    order.
    """

    __slots__ = (
        "interrupt",
        "offsets",
        "partition",
        "queue",
        "release",
        "revoked",
        "slots",
        "task",
    )

    def __init__(
        self,
        partition: TopicPartition,
        offsets: PartitionOffsets,
        *,
        by_key: bool,
        release: Callable[[int], None],
    ) -> None:
        self.partition = partition
        self.offsets = offsets
        self.queue: deque[ReceivedMessage] = deque()
        self.slots: deque[Slot] | None = deque() if by_key else None
        self.task: asyncio.Task[None] | None = None
        self.revoked = False
        self.interrupt = asyncio.Event()
        """Set when the lane must stop after its current work: a stop, a revocation, a loss."""
        self.release = release

    def finish(self, count: int) -> None:
        """Mark the first ``count`` queued messages finished.

        They leave the queue, count as done for the commit, and make room for fetching.
        """
        queue = self.queue
        slots = self.slots
        if slots is None:
            if count == len(queue):  # the whole queue, as a batch often is: one call
                last = queue[-1]
                queue.clear()
            else:
                for _ in range(count - 1):
                    queue.popleft()
                last = queue.popleft()
            self.offsets.position = last.offset() + 1  # type: ignore[operator]
        else:
            for _ in range(count):
                queue.popleft()
                slots.popleft().done = True
        self.release(count)


class Lanes:
    """The running lanes of a subscriber, the messages in flight, and the end of lost lanes.

    Args:
        drain: runs a lane's messages.
        offsets: the committable positions the lanes move.
        by_key: one lane per key within a partition, else one per partition.
        max_in_flight: fetched but unfinished messages at most.
        graceful_timeout: seconds a stop or a rebalance waits for running handlers.
    """

    def __init__(
        self,
        drain: DrainLane,
        offsets: OffsetTracker,
        *,
        by_key: bool,
        max_in_flight: int,
        graceful_timeout: float,
    ) -> None:
        self._drain_lane = drain
        self._offsets = offsets
        self._by_key = by_key
        self.max_in_flight = max_in_flight
        self.graceful_timeout = graceful_timeout
        self._lanes: dict[object, Lane] = {}
        self._in_flight = 0
        self._capacity = asyncio.Event()
        self._retiring: asyncio.Task[None] | None = None
        self.stopping = False

    def dispatch(self, messages: Sequence[ReceivedMessage]) -> None:
        """Queue each message on its lane, starting lanes that do not run."""
        # One pass over a fetch, which comes in runs of one partition: the lane is looked up
        # when the partition changes (per message with lanes per key). A lane from before a
        # rebalance reset its partition's progress keeps reporting to the old progress (never
        # committed); new messages get a new lane.
        progress = self._offsets.partition
        by_key = self._by_key
        last_topic: str | None = None
        last_number: int | None = None
        partition: TopicPartition = ("", -1)
        offsets = lane = None
        for message in messages:
            topic, number = message.topic(), message.partition()
            if topic != last_topic or number != last_number or offsets is None:
                last_topic, last_number = topic, number
                partition = (topic, number)  # type: ignore[assignment]
                offsets = progress(partition)
                lane = None if by_key else self._lane(partition, partition, offsets)
            if lane is None or by_key:
                lane = self._lane((partition, message.key()), partition, offsets)
                lane.slots.append(offsets.track(message.offset()))  # type: ignore[arg-type,union-attr]
            lane.queue.append(message)
        self._in_flight += len(messages)

    def _lane(self, key: object, partition: TopicPartition, offsets: PartitionOffsets) -> Lane:
        """The running lane of ``key``, or a new one (started)."""
        lane = self._lanes.get(key)
        if lane is None or lane.offsets is not offsets:
            lane = self._lanes[key] = Lane(
                partition, offsets, by_key=self._by_key, release=self._release
            )
            if self.stopping:
                lane.interrupt.set()  # fetched while stopping: left for redelivery
        if lane.task is None:
            lane.task = asyncio.create_task(self._drain(key, lane))
        return lane

    async def room(self) -> None:
        """Wait until fewer than ``max_in_flight`` messages are in flight (or stopping)."""
        while self._in_flight >= self.max_in_flight and not self.stopping:
            self._capacity.clear()
            await self._capacity.wait()

    async def _drain(self, key: object, lane: Lane) -> None:
        queue = lane.queue
        try:
            retiring = self._retiring
            if retiring is not None and not retiring.done():
                # Handlers of lost partitions still run: a key must not run twice at once here,
                # nor its later events before its earlier one (the new partition may differ).
                await asyncio.shield(retiring)
            # What is still queued when it returns (stopping, revoked) is left for redelivery.
            await self._drain_lane(lane)
        except Exception:
            logger.exception("event lane %s stopped unexpectedly", lane.partition)
        finally:
            self._release(len(queue))
            queue.clear()
            lane.task = None
            if self._lanes.get(key) is lane:
                del self._lanes[key]

    def _release(self, count: int) -> None:
        self._in_flight -= count
        if self._in_flight < self.max_in_flight:
            self._capacity.set()

    def _interrupt(self, partitions: Collection[TopicPartition] | None) -> list[Lane]:
        """Stop the lanes of ``partitions`` (all when ``None``) after their current message."""
        lanes = [
            lane
            for lane in self._lanes.values()
            if partitions is None or lane.partition in partitions
        ]
        for lane in lanes:
            lane.revoked = partitions is not None or lane.revoked
            lane.interrupt.set()
        return lanes

    async def _finish(self, lanes: Sequence[Lane]) -> None:
        tasks = [lane.task for lane in lanes if lane.task is not None]
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=self.graceful_timeout)
        for task in pending:
            logger.warning("a handler outlived the graceful timeout; it is cancelled")
            task.cancel()
        if pending:
            await asyncio.wait(pending)

    async def revoke(self, partitions: Collection[TopicPartition]) -> None:
        """Stop the lanes of ``partitions`` and wait for their running handlers."""
        await self._finish(self._interrupt(partitions))

    def retire(self, partitions: Collection[TopicPartition]) -> None:
        """Stop the lanes of lost ``partitions``; new lanes wait until their handlers finished.

        Handlers still running finish (up to ``graceful_timeout``, then they are cancelled).
        """
        running = [lane for lane in self._interrupt(partitions) if lane.task is not None]
        if running:
            self._retiring = asyncio.create_task(self._retire(self._retiring, running))

    async def _retire(self, earlier: asyncio.Task[None] | None, lanes: Sequence[Lane]) -> None:
        if earlier is not None:
            await earlier
        await self._finish(lanes)

    def halt(self) -> None:
        """Stop starting messages: fetching stops waiting for room, lanes stop after theirs."""
        self.stopping = True
        self._capacity.set()
        self._interrupt(None)

    async def finish(self) -> None:
        """Wait for every running handler (up to ``graceful_timeout``), lost lanes' included."""
        await self._finish(list(self._lanes.values()))
        if self._retiring is not None:
            await self._retiring

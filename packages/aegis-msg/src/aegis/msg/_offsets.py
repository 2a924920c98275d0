"""Which offsets may be committed: up to the last message finished together with all before it.

Handlers of one partition may finish out of order (concurrency per key); the committed offset
of a partition only moves past a contiguous run of finished messages, so a crash redelivers
everything that was not finished, and nothing that was is skipped (at-least-once).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Collection

from aegis.msg._transport import TopicPartition


class Slot:
    """One tracked message: its offset and whether its processing is finished."""

    __slots__ = ("done", "offset")

    def __init__(self, offset: int) -> None:
        self.offset = offset
        self.done = False


class PartitionOffsets:
    """One partition's progress: its tracked slots and the position safe to commit.

    A lane that runs the partition's messages one after another in offset order
    (``concurrency="partition"``) sets ``position`` itself after each message, without a
    :class:`Slot` per message.
    """

    __slots__ = ("committed", "pending", "position")

    def __init__(self) -> None:
        self.pending: deque[Slot] = deque()
        self.position: int | None = None  # next offset to read, as far as finished work goes
        self.committed: int | None = None  # what was last handed out for commit

    def track(self, offset: int) -> Slot:
        """Start tracking a message; set the returned slot's ``done`` when it is finished."""
        slot = Slot(offset)
        self.pending.append(slot)
        return slot

    def advance(self) -> int | None:
        pending = self.pending
        while pending and pending[0].done:
            self.position = pending.popleft().offset + 1
        return self.position


class OffsetTracker:
    """Tracks in-flight messages per partition and computes the offsets safe to commit."""

    def __init__(self) -> None:
        self._partitions: dict[TopicPartition, PartitionOffsets] = {}

    def partition(self, partition: TopicPartition) -> PartitionOffsets:
        """The progress of ``partition`` (created on first use)."""
        state = self._partitions.get(partition)
        if state is None:
            state = self._partitions[partition] = PartitionOffsets()
        return state

    def commits(
        self, partitions: Collection[TopicPartition] | None = None
    ) -> dict[TopicPartition, int]:
        """Offsets to commit (next offset to read) that moved since :meth:`committed` last saw.

        ``partitions`` (a collection of topic-partitions) limits the answer to those.
        """
        found: dict[TopicPartition, int] = {}
        for key, state in self._partitions.items():
            if partitions is not None and key not in partitions:
                continue
            position = state.advance()
            if position is not None and position != state.committed:
                found[key] = position
        return found

    def committed(self, commits: dict[TopicPartition, int]) -> None:
        """Record that ``commits`` were handed to the broker."""
        for key, position in commits.items():
            state = self._partitions.get(key)
            if state is not None:
                state.committed = position

    def drop(self, partitions: Collection[TopicPartition]) -> None:
        """Forget ``partitions`` (revoked, lost or newly assigned: start clean)."""
        for key in list(self._partitions):
            if key in partitions:
                del self._partitions[key]

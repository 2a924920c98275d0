"""The committable offsets: only past a contiguous run of finished messages (at-least-once).

Committing past an unfinished message loses it in a crash; committing the same position again,
or a dropped partition's, commits work this consumer no longer owns. Pure logic, no broker.
"""

from __future__ import annotations

from aegis.msg._offsets import OffsetTracker, PartitionOffsets

ORDERS = ("orders", 0)
OTHER = ("orders", 1)


def test_the_position_moves_only_past_finished_messages_in_offset_order() -> None:
    state = PartitionOffsets()
    assert state.advance() is None
    first, second, third = state.track(10), state.track(11), state.track(12)
    assert (first.offset, first.done) == (10, False)
    second.done = True
    assert state.advance() is None  # 10 is not finished: committing 12 would skip it
    first.done = True
    assert state.advance() == 12
    assert [slot.offset for slot in state.pending] == [12]
    third.done = True
    assert state.advance() == 13
    assert not state.pending
    assert state.advance() == 13


def test_a_lane_that_sets_the_position_itself_is_committed() -> None:
    tracker = OffsetTracker()
    state = tracker.partition(ORDERS)
    assert tracker.partition(ORDERS) is state
    assert tracker.commits() == {}
    state.position = 5
    assert tracker.commits() == {ORDERS: 5}


def test_commits_report_each_moved_position_once() -> None:
    tracker = OffsetTracker()
    slot = tracker.partition(ORDERS).track(0)
    other = tracker.partition(OTHER).track(7)
    assert tracker.commits() == {}
    slot.done = other.done = True
    assert tracker.commits() == {ORDERS: 1, OTHER: 8}
    tracker.committed({ORDERS: 1})
    assert tracker.commits() == {OTHER: 8}
    tracker.committed({OTHER: 8, ("gone", 3): 4})  # an unknown partition is not created
    assert tracker.commits() == {}
    assert tracker.partition(ORDERS).committed == 1
    tracker.partition(ORDERS).track(1).done = True
    assert tracker.commits() == {ORDERS: 2}
    tracker.committed({})
    assert tracker.commits() == {ORDERS: 2}
    assert ("gone", 3) not in tracker.commits(None)
    assert tracker.partition(("gone", 3)).committed is None


def test_commits_can_be_limited_to_some_partitions() -> None:
    tracker = OffsetTracker()
    tracker.partition(ORDERS).position = 3
    tracker.partition(OTHER).position = 9
    assert tracker.commits([OTHER]) == {OTHER: 9}
    assert tracker.commits([]) == {}
    assert tracker.commits({ORDERS, OTHER}) == {ORDERS: 3, OTHER: 9}


def test_dropped_partitions_start_clean_and_the_others_are_kept() -> None:
    tracker = OffsetTracker()
    tracker.partition(ORDERS).position = 3
    tracker.partition(OTHER).position = 9
    tracker.committed({ORDERS: 3, OTHER: 9})
    tracker.drop([ORDERS])
    assert tracker.partition(OTHER).committed == 9
    fresh = tracker.partition(ORDERS)
    assert (fresh.position, fresh.committed, list(fresh.pending)) == (None, None, [])
    fresh.position = 3
    assert tracker.commits() == {ORDERS: 3}  # a new owner commits again
    tracker.drop([])
    assert tracker.commits() == {ORDERS: 3}


def test_a_position_equal_to_the_committed_one_is_not_committed_again() -> None:
    # Offsets past 256 are distinct int objects even when equal: compared by value, not identity.
    tracker = OffsetTracker()
    state = tracker.partition(ORDERS)
    state.position = 1000
    tracker.committed(tracker.commits())
    state.position = int("1000")
    assert tracker.commits() == {}
    state.position = 1001
    assert tracker.commits() == {ORDERS: 1001}

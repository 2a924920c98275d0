"""A group of consumer processes under a steady producer: one killed, one added, one stopped.

Three processes (``group_member.py``) share a 12-partition topic in one consumer group while
this test publishes visits of 24 users, each user's ``seq`` counting up. Mid-stream one member
is SIGKILLed, a new one joins, and one is stopped with SIGTERM. Nothing may be lost, each
user's visits must take effect in order, and the events delivered twice must be ones the killed
member had received (at least once), their second delivery absorbed by the idempotency store.
The longest pause in handling around each rebalance is printed (``-s`` shows it).
"""

from __future__ import annotations

import asyncio
import itertools
import signal
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from aegis.msg import (
    Event,
    EventPublisher,
    EventRegistry,
    KafkaSettings,
    KafkaTransport,
    SqlIdempotencyStore,
)

pytestmark = [pytest.mark.anyio, pytest.mark.scaleout]

MEMBER = Path(__file__).with_name("group_member.py")
PARTITIONS = 12
USERS = [f"user-{n:02d}" for n in range(24)]
PUBLISH_EVERY = 0.01  # seconds between two visits: a steady stream of some 60-80 a second
WAIT = 60.0  # seconds any one step may take at most (a rebalance took over 30 s at load 10)


class VisitData(BaseModel):
    user: str
    seq: int


class UserVisited(Event[VisitData]):
    type = "test.group.user_visited"
    key_field = "user"


@dataclass(frozen=True)
class Handled:
    """One row the members wrote: an event handled by process ``pid`` at ``at`` (epoch s)."""

    row: int
    event_id: str
    user: str
    seq: int
    pid: int
    at: float


@dataclass
class Producer:
    """Publishes visits of :data:`USERS` in turn until stopped; remembers what was delivered."""

    publisher: EventPublisher
    topic: str
    sent: dict[str, tuple[str, int]] = field(default_factory=dict)
    stopped: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        seqs: Counter[str] = Counter()
        for user in itertools.cycle(USERS):
            if self.stopped.is_set():
                return
            event = UserVisited(data=VisitData(user=user, seq=seqs[user]))
            result = await self.publisher.publish(event, topic=self.topic)
            assert result.ok, result.error
            self.sent[event.id] = (user, seqs[user])
            seqs[user] += 1
            await asyncio.sleep(PUBLISH_EVERY)  # pacing only; nothing waits on it


@dataclass
class Tables:
    """The test's own tables: deliveries, effects, finished events and the idempotency store's."""

    engine: AsyncEngine
    prefix: str

    async def create(self) -> None:
        async with self.engine.begin() as connection:
            for name in ("deliveries", "effects", "finished"):
                await connection.execute(
                    text(
                        f"CREATE TABLE {self.prefix}_{name} (id bigserial PRIMARY KEY, "
                        "event_id text NOT NULL, user_key text NOT NULL, seq int NOT NULL, "
                        "pid int NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp())"
                    )
                )
        await SqlIdempotencyStore(self.engine, table_name=f"{self.prefix}_processed").create_table()

    def resumed(self, after: float, *, by: set[int] | None = None) -> Callable[[], Awaitable[bool]]:
        """A check: every user had an event take effect after ``after`` (by ``by`` if given)."""

        async def check() -> bool:
            rows = await self.rows("effects")
            users = {h.user for h in rows if h.at > after}
            pids = {h.pid for h in rows if h.at > after}
            return users == set(USERS) and (by is None or by <= pids)

        return check

    async def rows(self, name: str) -> list[Handled]:
        async with self.engine.connect() as connection:
            result = await connection.execute(
                text(
                    "SELECT id, event_id, user_key, seq, pid, extract(epoch FROM at) "  # noqa: S608
                    f"FROM {self.prefix}_{name} ORDER BY id"
                )
            )
            return [Handled(r[0], r[1], r[2], r[3], r[4], float(r[5])) for r in result]


@dataclass
class Group:
    """The member processes, started and ended by the test."""

    argv: list[str]
    logs: Path
    members: list[asyncio.subprocess.Process] = field(default_factory=list)

    async def add(self) -> asyncio.subprocess.Process:
        with (self.logs / f"member-{len(self.members)}.log").open("wb") as log:
            process = await asyncio.create_subprocess_exec(
                sys.executable, str(MEMBER), *self.argv, stderr=log
            )
        self.members.append(process)
        return process

    def kill_all(self) -> None:
        for process in self.members:
            if process.returncode is None:
                process.kill()


@pytest.fixture
async def engine(postgres_database: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(
        postgres_database.replace("postgresql://", "postgresql+asyncpg://")
    )
    yield engine
    await engine.dispose()


@pytest.fixture
def group(
    kafka_bootstrap: str,
    kafka_topic_factory: Callable[..., str],
    postgres_database: str,
    tmp_path: Path,
) -> Iterator[Group]:
    prefix = f"grp_{uuid.uuid4().hex[:10]}"
    topic = kafka_topic_factory("visits", partitions=PARTITIONS)
    url = postgres_database.replace("postgresql://", "postgresql+asyncpg://")
    group = Group([kafka_bootstrap, prefix, topic, url, prefix, "default"], tmp_path)
    yield group
    group.kill_all()


async def until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll ``check`` until it holds; fail after :data:`WAIT` seconds, saying ``what``."""
    deadline = time.monotonic() + WAIT
    while not await check():
        assert time.monotonic() < deadline, f"not within {WAIT} s: {what}"
        await asyncio.sleep(0.1)


def longest_gap(handled: list[Handled], start: float, end: float) -> float:
    """The longest time in ``[start, end]`` in which no member handled anything."""
    times = sorted(h.at for h in handled if start <= h.at <= end)
    points = [start, *times, end]
    return max(b - a for a, b in itertools.pairwise(points))


@dataclass
class Churn:
    """What :func:`churn` did to the group, and when (epoch seconds)."""

    victim: int
    killed_at: float
    recovered_at: float
    joined_at: float
    settled_at: float
    stop_at: float
    after_stop: float


async def churn(group: Group, tables: Tables) -> Churn:
    """Start three members, SIGKILL one, add one, SIGTERM one; each time wait for the flow."""
    first = [await group.add() for _ in range(3)]
    await until(tables.resumed(0, by={p.pid for p in first}), "three members handle events")

    victim, stopped = first[0], first[1]
    victim.send_signal(signal.SIGKILL)
    killed_at = time.time()
    assert await asyncio.wait_for(victim.wait(), WAIT) == -signal.SIGKILL
    await until(tables.resumed(killed_at), "every user's events flow after the kill")
    recovered_at = time.time()

    joiner = await group.add()
    joined_at = time.time()
    await until(tables.resumed(joined_at, by={joiner.pid}), "the new member handles events")
    settled_at = time.time()

    stopped.send_signal(signal.SIGTERM)
    stop_at = time.time()
    assert await asyncio.wait_for(stopped.wait(), WAIT) == 0
    await until(tables.resumed(time.time()), "every user's events flow after the stop")
    after_stop = time.time()
    return Churn(victim.pid, killed_at, recovered_at, joined_at, settled_at, stop_at, after_stop)


async def test_a_group_of_processes_loses_nothing_keeps_each_key_in_order_through_rebalances(
    group: Group, engine: AsyncEngine, kafka_bootstrap: str
) -> None:
    topic, prefix = group.argv[2], group.argv[1]
    tables = Tables(engine, prefix)
    await tables.create()
    settings = KafkaSettings(bootstrap_servers=kafka_bootstrap, client_id="group-producer")
    async with KafkaTransport(settings) as kafka:
        producer = Producer(EventPublisher(kafka, registry=EventRegistry()), topic)
        producing = asyncio.create_task(producer.run())
        try:
            done = await churn(group, tables)
        finally:
            producer.stopped.set()
            await producing
    sent = producer.sent

    async def all_handled() -> bool:
        return {h.event_id for h in await tables.rows("effects")} >= sent.keys()

    await until(all_handled, "every published event took effect")
    for process in group.members:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(process.wait(), WAIT) == 0

    effects, deliveries = await tables.rows("effects"), await tables.rows("deliveries")
    # Nothing lost, nothing made up.
    assert {h.event_id for h in effects} == sent.keys()
    assert all(sent[h.event_id] == (h.user, h.seq) for h in effects)

    # Each user's events took effect in order (the first effect of each, in row order).
    first_effects: dict[str, Handled] = {}
    for h in effects:
        first_effects.setdefault(h.event_id, h)
    by_user: dict[str, list[int]] = defaultdict(list)
    for h in sorted(first_effects.values(), key=lambda h: h.row):
        by_user[h.user].append(h.seq)
    assert all(seqs == sorted(seqs) for seqs in by_user.values()), dict(by_user)

    # Delivered twice only what the killed member had received without committing it.
    delivery_counts = Counter(h.event_id for h in deliveries)
    to_victim = {h.event_id for h in deliveries if h.pid == done.victim}
    redelivered = {event_id for event_id, n in delivery_counts.items() if n > 1}
    assert redelivered <= to_victim, redelivered - to_victim

    # The idempotency store absorbed redeliveries: an event took effect twice only where the
    # killed member died between the effect and the store's record of it.
    effect_counts = Counter(h.event_id for h in effects)
    twice = {event_id for event_id, n in effect_counts.items() if n > 1}
    finished_by_victim = {h.event_id for h in await tables.rows("finished") if h.pid == done.victim}
    assert all(effect_counts[event_id] == 2 for event_id in twice), effect_counts
    assert all(first_effects[event_id].pid == done.victim for event_id in twice)
    assert not twice & finished_by_victim, twice & finished_by_victim

    report = {
        "events": len(sent),
        "redelivered": len(redelivered),
        "absorbed by the store": len(redelivered & finished_by_victim),
        "effect repeated (killed between effect and store)": len(twice),
        "kill: longest pause of the group (s)": longest_gap(
            effects, done.killed_at, done.recovered_at
        ),
        "kill: until every user flowed again (s)": done.recovered_at - done.killed_at,
        "join: longest pause (s)": longest_gap(effects, done.joined_at, done.settled_at),
        "graceful stop: longest pause (s)": longest_gap(effects, done.stop_at, done.after_stop),
    }
    rounded = {name: round(value, 2) for name, value in report.items()}
    print(f"\nconsumer group through kill, join and stop: {rounded}")  # noqa: T201

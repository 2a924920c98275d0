"""One member of a consumer group, run as its own process by ``test_consumer_group.py``.

``python group_member.py BOOTSTRAP GROUP TOPIC DATABASE_URL TABLE_PREFIX STRATEGY``

Every call of the handler is written to ``<prefix>_deliveries``; its idempotent part (the effect)
to ``<prefix>_effects``, guarded by a :class:`SqlIdempotencyStore` in ``<prefix>_processed``; and
``<prefix>_finished`` once the store recorded the event as processed. Each row holds the event id,
the user key, the per-user ``seq`` and this process's id. SIGTERM or SIGINT stops the subscriber
gracefully; the test SIGKILLs one member.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from aegis.msg import (
    Event,
    EventSubscriber,
    KafkaSettings,
    KafkaTransport,
    RetryPolicy,
    SqlIdempotencyStore,
    idempotent,
)

# A claim left by the killed member blocks its event for this long. Shorter than the session
# timeout, it has expired by the time the next owner of the partition gets the event; should it
# not have, that owner retries in process (a retry topic would reorder the user's events).
CLAIM_LEASE = 2.0
RETRY = RetryPolicy(attempts=40, backoff=0.05, max_backoff=0.5, topic_delays=())


class VisitData(BaseModel):
    """One visit of a user; ``seq`` counts the user's visits from 0."""

    user: str
    seq: int


class UserVisited(Event[VisitData]):
    """The event the group consumes, keyed by user."""

    type = "test.group.user_visited"
    key_field = "user"


def consumer_settings(strategy: str) -> dict[str, str | int | float | bool]:
    """Consumer settings of the members: a fast group join, and the assignment strategy."""
    settings: dict[str, str | int | float | bool] = {
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 500,
    }
    if strategy != "default":
        settings["partition.assignment.strategy"] = strategy
    return settings


async def write(engine: AsyncEngine, table: str, event: UserVisited) -> None:
    """Record that this process handled ``event`` in ``table``."""
    async with engine.begin() as connection:
        await connection.execute(
            text(
                f"INSERT INTO {table} (event_id, user_key, seq, pid) "  # noqa: S608 - own table
                "VALUES (:event_id, :user_key, :seq, :pid)"
            ),
            {
                "event_id": event.id,
                "user_key": event.data.user,
                "seq": event.data.seq,
                "pid": os.getpid(),
            },
        )


async def main(  # noqa: PLR0917 - the command line, as it comes
    bootstrap: str, group: str, topic: str, database_url: str, prefix: str, strategy: str
) -> None:
    """Consume ``topic`` in ``group`` until SIGTERM or SIGINT."""
    engine = create_async_engine(database_url)
    store = SqlIdempotencyStore(engine, table_name=f"{prefix}_processed", lease=CLAIM_LEASE)
    settings = KafkaSettings(
        bootstrap_servers=bootstrap,
        client_id=f"group-member-{os.getpid()}",
        consumer=consumer_settings(strategy),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    @idempotent(store, name="visits")
    async def take_effect(event: UserVisited) -> None:
        await write(engine, f"{prefix}_effects", event)

    async with KafkaTransport(settings) as kafka:
        subscriber = EventSubscriber(kafka, group_id=group, retry=RETRY)

        @subscriber.on(UserVisited, topic=topic)
        async def handle(event: UserVisited) -> None:
            await write(engine, f"{prefix}_deliveries", event)
            await take_effect(event)
            await write(engine, f"{prefix}_finished", event)

        async with subscriber:
            await stop.wait()
    await engine.dispose()


if __name__ == "__main__":
    logging.basicConfig(
        level=logging.INFO, format=f"%(asctime)s {os.getpid()} %(name)s %(levelname)s %(message)s"
    )
    asyncio.run(main(*sys.argv[1:7]))

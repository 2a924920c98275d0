"""aegis.db's BaseRepository against the same queries in plain SQLAlchemy 2 ORM, on PostgreSQL.

Cases, each timed side by side in one run (rounds interleaved, medians reported):

- get by id: ``repository.get(id)`` vs ``session.scalars(select(Item).where(Item.id == id))``;
- a 50-row page: ``repository.list(limit=50, offset=k)`` vs the same ``select ... limit offset``;
- depth: keyset page 1 vs page 2,000 (of 100,000 rows, 50 a page), and offset likewise;
- ``count(quantity=k)`` vs ``select(func.count()).select_from(Item).where(...)`` (an indexed
  column, ~1,000 matching rows);
- ``update(id, {"quantity": k})`` vs the same ``UPDATE ... RETURNING`` statement, and
  ``delete(id)`` vs ``DELETE ... WHERE id = ...`` (each round rolled back);
- ``create_many`` of 10,000 rows vs ``session.add_all`` + ``flush`` (both rolled back).

The peer, advanced-alchemy's ``SQLAlchemyAsyncRepository`` (``get``, ``list`` with
``LimitOffset`` + ``OrderBy``, ``count``, ``update`` of a model instance, ``delete``,
``add_many``), runs in the same rounds when it is installed.

Usage: .venv/bin/python benchmarks/db_repository.py [--url postgresql://...] [--rounds 5]
(the URL defaults to $AEGIS_TEST_POSTGRES_URL, then the local test server; the table
``bench_db_items`` is dropped and recreated there).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import random
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from _results import Results, add_json_argument, figure
from pydantic import BaseModel, ConfigDict, SecretStr
from sqlalchemy import String, delete, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from aegis.core.models import CursorPage
from aegis.db import (
    BaseRepository,
    DatabaseManager,
    DatabaseSettings,
    TimestampMixin,
    UUIDPrimaryKeyMixin,
)

ROWS = 100_000
PAGE = 50
DEEP_PAGE = 2_000
BULK = 10_000
GETS_PER_ROUND = 300
PAGES_PER_ROUND = 100
COUNTS_PER_ROUND = 100
WRITES_PER_ROUND = 300
SECRET = b"benchmark-cursor-secret-32-bytes"


class Base(DeclarativeBase):
    """Declarative base of the benchmark table."""


class Item(UUIDPrimaryKeyMixin, TimestampMixin, Base):
    """A row with a UUIDv7 key, database timestamps, a name and a quantity."""

    __tablename__ = "bench_db_items"

    name: Mapped[str] = mapped_column(String(50))
    quantity: Mapped[int] = mapped_column(index=True)


class ItemOut(BaseModel):
    """What a keyset page returns per row."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    quantity: int


class ItemRepository(BaseRepository[Item]):
    """The repository under test, with every default."""


Timed = Callable[[], Awaitable[None]]
PEER_GET = "advanced-alchemy repository.get"
PEER_LIST = "advanced-alchemy repository.list"
PEER_BULK = "advanced-alchemy add_many"
PEER_COUNT = "advanced-alchemy repository.count"
PEER_UPDATE = "advanced-alchemy repository.update"
PEER_DELETE = "advanced-alchemy repository.delete"


def peer_repository() -> Any:
    """advanced-alchemy's async repository class over Item, when advanced-alchemy is installed."""
    if importlib.util.find_spec("advanced_alchemy") is None:
        return None
    from advanced_alchemy.repository import SQLAlchemyAsyncRepository  # peer

    class ItemPeerRepository(SQLAlchemyAsyncRepository[Item]):
        """The peer's repository, every default."""

        model_type = Item

    return ItemPeerRepository


# Every comparison's medians in run order, for --json.
MEASURED: list[dict[str, float]] = []


async def timed(run: Timed) -> float:
    """Seconds one call of ``run`` takes."""
    start = time.perf_counter()
    await run()
    return time.perf_counter() - start


async def compare(name: str, cases: dict[str, Timed], rounds: int) -> dict[str, float]:
    """Run every case once per round, interleaved; print and return the medians.

    One untimed warm-up round fills SQLAlchemy's statement caches; then the order alternates
    each round, so neither side always runs first.
    """
    samples: dict[str, list[float]] = {label: [] for label in cases}
    for run in cases.values():
        await run()
    order = list(cases.items())
    for round_number in range(rounds):
        for label, run in order if round_number % 2 == 0 else order[::-1]:
            samples[label].append(await timed(run))
    medians = {label: statistics.median(values) for label, values in samples.items()}
    baseline = next(iter(medians.values()))
    print(f"\n{name}")
    for label, seconds in medians.items():
        print(f"  {label:<38} {seconds * 1000:9.2f} ms   x{seconds / baseline:.2f}")
    MEASURED.append(medians)
    return medians


async def seed(db: DatabaseManager) -> list[uuid.UUID]:
    """Recreate the table with ``ROWS`` rows; return a sample of their ids."""
    async with db.engine.begin() as connection:
        await connection.run_sync(Base.metadata.drop_all)
        await connection.run_sync(Base.metadata.create_all)
    for start in range(0, ROWS, BULK):
        async with db.transaction() as session:
            await ItemRepository(session).create_many(
                [{"name": f"item-{i}", "quantity": i % 97} for i in range(start, start + BULK)],
                returning=False,
            )
    # Statistics and the visibility map as a table in use has them: without this, counts
    # visit the heap until autovacuum runs, and when it runs in the middle of a case depends
    # on the machine.
    async with db.engine.connect() as connection:
        autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
        await autocommit.execute(text(f"VACUUM ANALYZE {Item.__tablename__}"))
    async with db.session() as session:
        ids = (await session.scalars(select(Item.id).limit(1000))).all()
    return list(ids)


async def main_async(url: str, rounds: int) -> None:
    """Seed the table, then time every case against its plain-ORM baseline."""
    db = DatabaseManager(DatabaseSettings(url=SecretStr(url)))
    plain = async_sessionmaker(db.engine, expire_on_commit=False)
    try:
        ids = await seed(db)
        await bench_reads(db, plain, ids, rounds)
        await bench_depth(db, rounds)
        await bench_count(db, plain, rounds)
        await bench_writes(db, plain, ids, rounds)
        await bench_bulk(db, plain, rounds)
    finally:
        async with db.engine.begin() as connection:
            await connection.run_sync(Base.metadata.drop_all)
        await db.dispose()


async def bench_reads(
    db: DatabaseManager,
    plain: async_sessionmaker[AsyncSession],
    ids: list[uuid.UUID],
    rounds: int,
) -> None:
    """Get by id and 50-row pages: repository vs the same statements in plain ORM."""
    chosen = random.Random(7).choices(ids, k=GETS_PER_ROUND)  # noqa: S311 - sampling

    async def raw_get() -> None:
        async with plain() as session:
            for item_id in chosen:
                statement = select(Item).where(Item.id == item_id)
                (await session.scalars(statement)).one()

    async def repo_get() -> None:
        async with db.session() as session:
            repository = ItemRepository(session)
            for item_id in chosen:
                await repository.get(item_id)

    peer = peer_repository()

    async def peer_get() -> None:
        async with plain() as session:
            repository = peer(session=session)
            for item_id in chosen:
                await repository.get(item_id)

    gets: dict[str, Timed] = {"plain SQLAlchemy ORM": raw_get, "aegis BaseRepository.get": repo_get}
    if peer is not None:
        gets[PEER_GET] = peer_get
    await compare(f"get by id ({GETS_PER_ROUND} per round)", gets, rounds)

    offsets = [PAGE * i for i in range(PAGES_PER_ROUND)]

    async def raw_list() -> None:
        async with plain() as session:
            for offset in offsets:
                statement = select(Item).order_by(Item.id).offset(offset).limit(PAGE)
                (await session.scalars(statement)).all()

    async def repo_list() -> None:
        async with db.session() as session:
            repository = ItemRepository(session)
            for offset in offsets:
                await repository.list(limit=PAGE, offset=offset)

    async def peer_list() -> None:
        from advanced_alchemy.filters import LimitOffset, OrderBy  # peer

        async with plain() as session:
            repository = peer(session=session)
            for offset in offsets:
                await repository.list(LimitOffset(limit=PAGE, offset=offset), OrderBy("id"))

    lists: dict[str, Timed] = {
        "plain SQLAlchemy ORM": raw_list,
        "aegis BaseRepository.list": repo_list,
    }
    if peer is not None:
        lists[PEER_LIST] = peer_list
    await compare(f"50-row page ({PAGES_PER_ROUND} per round)", lists, rounds)


async def bench_depth(db: DatabaseManager, rounds: int) -> None:
    """Keyset and offset pages at the start and 2,000 pages deep."""
    async with db.session() as session:
        repository = ItemRepository(session, cursor_secret=SECRET)
        page: CursorPage[ItemOut] = await repository.paginate_keyset(ItemOut, size=PAGE)
        for _ in range(DEEP_PAGE - 2):
            page = await repository.paginate_keyset(ItemOut, size=PAGE, cursor=page.next_cursor)
    deep_cursor = page.next_cursor

    def keyset(cursor: str | None) -> Timed:
        async def run() -> None:
            async with db.session() as session:
                repository = ItemRepository(session, cursor_secret=SECRET)
                for _ in range(20):
                    await repository.paginate_keyset(ItemOut, size=PAGE, cursor=cursor)

        return run

    def offset_page(number: int) -> Timed:
        async def run() -> None:
            async with db.session() as session:
                repository = ItemRepository(session)
                for _ in range(20):
                    await repository.list(limit=PAGE, offset=(number - 1) * PAGE)

        return run

    await compare(
        f"page depth (20 pages per round, {ROWS:,} rows)",
        {
            "keyset page 1": keyset(None),
            f"keyset page {DEEP_PAGE:,}": keyset(deep_cursor),
            "offset page 1": offset_page(1),
            f"offset page {DEEP_PAGE:,}": offset_page(DEEP_PAGE),
        },
        rounds,
    )


async def bench_count(
    db: DatabaseManager, plain: async_sessionmaker[AsyncSession], rounds: int
) -> None:
    """Count the rows with one quantity (an indexed column, ~1,000 rows each)."""
    quantities = [i % 97 for i in range(COUNTS_PER_ROUND)]
    peer = peer_repository()

    async def raw_count() -> None:
        async with plain() as session:
            for quantity in quantities:
                statement = select(func.count()).select_from(Item).where(Item.quantity == quantity)
                (await session.execute(statement)).scalar_one()

    async def repo_count() -> None:
        async with db.session() as session:
            repository = ItemRepository(session)
            for quantity in quantities:
                await repository.count(quantity=quantity)

    async def peer_count() -> None:
        async with plain() as session:
            repository = peer(session=session)
            for quantity in quantities:
                await repository.count(quantity=quantity)

    counts: dict[str, Timed] = {
        "plain SQLAlchemy ORM": raw_count,
        "aegis BaseRepository.count": repo_count,
    }
    if peer is not None:
        counts[PEER_COUNT] = peer_count
    await compare(f"count with a filter ({COUNTS_PER_ROUND} per round)", counts, rounds)


async def bench_writes(
    db: DatabaseManager,
    plain: async_sessionmaker[AsyncSession],
    ids: list[uuid.UUID],
    rounds: int,
) -> None:
    """Update and delete by id, each round rolled back."""
    peer = peer_repository()

    chosen = ids[:WRITES_PER_ROUND]

    async def raw_update() -> None:
        async with plain() as session:
            for number, item_id in enumerate(chosen):
                statement = (
                    update(Item).where(Item.id == item_id).values(quantity=number).returning(Item)
                )
                (await session.scalars(statement)).one()
            await session.rollback()

    async def repo_update() -> None:
        async with db.session() as session:
            repository = ItemRepository(session)
            for number, item_id in enumerate(chosen):
                await repository.update(item_id, {"quantity": number})
            await session.rollback()

    async def peer_update() -> None:
        async with plain() as session:
            repository = peer(session=session)
            for number, item_id in enumerate(chosen):
                await repository.update(Item(id=item_id, quantity=number))
            await session.rollback()

    updates: dict[str, Timed] = {
        "plain SQLAlchemy ORM": raw_update,
        "aegis BaseRepository.update": repo_update,
    }
    if peer is not None:
        updates[PEER_UPDATE] = peer_update
    await compare(f"update by id ({WRITES_PER_ROUND} per round)", updates, rounds)

    async def raw_delete() -> None:
        async with plain() as session:
            for item_id in chosen:
                await session.execute(delete(Item).where(Item.id == item_id))
            await session.rollback()

    async def repo_delete() -> None:
        async with db.session() as session:
            repository = ItemRepository(session)
            for item_id in chosen:
                await repository.delete(item_id)
            await session.rollback()

    async def peer_delete() -> None:
        async with plain() as session:
            repository = peer(session=session)
            for item_id in chosen:
                await repository.delete(item_id)
            await session.rollback()

    deletes: dict[str, Timed] = {
        "plain SQLAlchemy ORM": raw_delete,
        "aegis BaseRepository.delete": repo_delete,
    }
    if peer is not None:
        deletes[PEER_DELETE] = peer_delete
    await compare(f"delete by id ({WRITES_PER_ROUND} per round)", deletes, rounds)


async def bench_bulk(
    db: DatabaseManager, plain: async_sessionmaker[AsyncSession], rounds: int
) -> None:
    """create_many vs add_all + flush, each rolled back so the table keeps its size."""
    rows = [{"name": f"bulk-{i}", "quantity": i % 13} for i in range(BULK)]

    async def raw_bulk() -> None:
        async with plain() as session:
            session.add_all([Item(**row) for row in rows])
            await session.flush()
            await session.rollback()

    async def repo_bulk(*, returning: bool) -> None:
        async with db.session() as session:
            await ItemRepository(session).create_many(rows, returning=returning)
            await session.rollback()

    async def repo_bulk_returning() -> None:
        await repo_bulk(returning=True)

    async def repo_bulk_fire_and_forget() -> None:
        await repo_bulk(returning=False)

    peer = peer_repository()

    async def peer_bulk() -> None:
        async with plain() as session:
            await peer(session=session).add_many([Item(**row) for row in rows])
            await session.rollback()

    bulks: dict[str, Timed] = {
        "plain add_all + flush": raw_bulk,
        "aegis create_many": repo_bulk_returning,
        "aegis create_many(returning=False)": repo_bulk_fire_and_forget,
    }
    if peer is not None:
        bulks[PEER_BULK] = peer_bulk
    await compare(f"insert {BULK:,} rows", bulks, rounds)


def main() -> None:
    """Parse the arguments and run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--url",
        default=os.environ.get(
            "AEGIS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
        ),
    )
    parser.add_argument("--rounds", type=int, default=5)
    add_json_argument(parser)
    args = parser.parse_args()
    print(f"PostgreSQL, {ROWS:,} rows; medians of {args.rounds} interleaved rounds")
    asyncio.run(main_async(args.url, args.rounds))
    record().write(args.json)


def record() -> Results:
    """The comparisons measured, as --json cases (times in ms, lower is better)."""
    results = Results("aegis-db", "db_repository", ["sqlalchemy", "asyncpg", "advanced-alchemy"])
    reads, pages, depth, counts, updates, deletes, bulk = MEASURED
    deep = f"{DEEP_PAGE:,}"
    plain = "plain SQLAlchemy ORM"
    close = "<= 1.05x plain's time; faster than advanced-alchemy"
    ahead = "faster than advanced-alchemy"
    writes = WRITES_PER_ROUND
    cases = [
        (f"get by id x{GETS_PER_ROUND}", reads, "aegis BaseRepository.get", plain, PEER_GET, close),
        (f"50-row page x{PAGES_PER_ROUND}", pages, "aegis BaseRepository.list", plain, PEER_LIST,
         close),
        (f"20 pages at page {deep}", depth, f"keyset page {deep}", f"offset page {deep}", "", None),
        (f"count with a filter x{COUNTS_PER_ROUND}", counts, "aegis BaseRepository.count", plain,
         PEER_COUNT, ahead),
        (f"update by id x{writes}", updates, "aegis BaseRepository.update", plain, PEER_UPDATE,
         ahead),
        (f"delete by id x{writes}", deletes, "aegis BaseRepository.delete", plain, PEER_DELETE,
         ahead),
        (f"insert {BULK:,} rows", bulk, "aegis create_many", "plain add_all + flush", PEER_BULK,
         ahead),
    ]  # fmt: skip
    for name, medians, ours, theirs, peer, goal in cases:
        results.case(
            name,
            "ms",
            aegis=figure(ours, medians[ours] * 1000),
            raw=figure(theirs, medians[theirs] * 1000),
            peers=[figure(peer, medians[peer] * 1000)] if peer in medians else [],
            higher_is_better=False,
            goal=goal,
        )
    return results


if __name__ == "__main__":
    main()

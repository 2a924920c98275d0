"""Error translation (_errors.py): each SQLSTATE and SQLite code raised by a real server.

The class of an error decides the HTTP answer (409, 422, 503, 504) and whether a transaction
is run again (is_transient): each case here is provoked on PostgreSQL or SQLite, not faked.
"""

# ruff: noqa: PT012 - the statements run in a transaction block: their errors come from inside it

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import CheckConstraint, Column, Integer, MetaData, Table, insert, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncConnection

from aegis.core.errors import (
    AegisError,
    ConflictError,
    DatabaseError,
    DatabaseUnavailableError,
    IntegrityViolationError,
    InvalidInputError,
)
from aegis.db import (
    ConcurrentUpdateError,
    DatabaseManager,
    DatabaseSettings,
    DuplicateError,
    ForeignKeyError,
    StatementTimeoutError,
    TransactionStateError,
    is_transient,
    sqlstate_of,
    translating_errors,
)
from aegis.db._errors import ConnectFailure, translate_error

pytestmark = pytest.mark.anyio
BOUND = 30  # seconds: a statement that should fail fast but hangs fails the test instead

SCHEMA = [
    "CREATE TABLE parents (id INTEGER PRIMARY KEY, name VARCHAR(20) NOT NULL UNIQUE)",
    "CREATE TABLE kids (id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parents (id),"
    " age INTEGER CONSTRAINT ck_kids_age CHECK (age >= 0))",
    "INSERT INTO parents VALUES (1, 'ann')",
]

# A CHECK built from columns, so the table metadata knows which columns it covers.
RANGES = MetaData()
ranges = Table(
    "ranges",
    RANGES,
    Column("id", Integer, primary_key=True),
    Column("lo", Integer),
    Column("hi", Integer),
)
ranges.append_constraint(CheckConstraint(ranges.c.lo <= ranges.c.hi, name="ck_ranges_order"))


async def _manager(url: str) -> DatabaseManager:
    manager = DatabaseManager(DatabaseSettings(url=SecretStr(url)))
    async with manager.engine.begin() as connection:
        if manager.dialect_name == "postgresql":
            await connection.execute(text("DROP TABLE IF EXISTS kids, parents"))
        for statement in SCHEMA:
            await connection.execute(text(statement))
    return manager


@pytest.fixture
async def pg(postgres_database: str) -> AsyncIterator[DatabaseManager]:
    manager = await _manager(postgres_database)
    yield manager
    await manager.dispose()


@pytest.fixture
async def lite(tmp_path: Path) -> AsyncIterator[DatabaseManager]:
    manager = await _manager(f"sqlite:///{tmp_path / 'e.db'}")
    yield manager
    await manager.dispose()


@pytest.fixture(params=["postgresql", "sqlite"])
async def any_db(
    request: pytest.FixtureRequest, postgres_database: str, tmp_path: Path
) -> AsyncIterator[DatabaseManager]:
    url = postgres_database if request.param == "postgresql" else f"sqlite:///{tmp_path / 'e.db'}"
    manager = await _manager(url)
    yield manager
    await manager.dispose()


async def failure(db: DatabaseManager, *statements: str) -> AegisError:
    """The aegis error raised by running ``statements`` in one transaction."""
    with pytest.raises(AegisError) as raised:
        async with asyncio.timeout(BOUND), db.engine.begin() as connection:
            with translating_errors():
                if db.dialect_name == "sqlite":
                    await connection.execute(text("PRAGMA foreign_keys = ON"))
                for statement in statements:
                    await connection.execute(text(statement))
    assert isinstance(raised.value.__cause__, sa_exc.SQLAlchemyError)
    return raised.value


async def pg_exec(connection: AsyncConnection, *statements: str) -> None:
    for statement in statements:
        await connection.exec_driver_sql(statement)


def _field(error: AegisError) -> tuple[str, str]:
    assert isinstance(error, InvalidInputError)
    return error.errors[0].field, error.errors[0].type


class TestIntegrity:
    """Constraint violations: 409 for duplicates and references, 422 for bad values."""

    async def test_each_constraint_kind(self, any_db: DatabaseManager) -> None:
        db = any_db
        duplicate = await failure(db, "INSERT INTO parents VALUES (2, 'ann')")
        assert type(duplicate) is DuplicateError
        assert duplicate.status == 409
        assert "name" in str(duplicate)
        primary = await failure(db, "INSERT INTO parents VALUES (1, 'bob')")
        assert type(primary) is DuplicateError
        reference = await failure(db, "INSERT INTO kids VALUES (1, 99, 1)")
        assert type(reference) is ForeignKeyError
        assert reference.status == 409
        missing = await failure(db, "INSERT INTO parents (id) VALUES (3)")
        assert _field(missing) == ("name", "not_null")
        assert "not-null constraint" in str(missing)
        check = await failure(db, "INSERT INTO kids VALUES (1, 1, -1)")
        assert _field(check)[1] == "check"
        assert "check constraint" in str(check)

    async def test_postgres_names_the_constraint_of_a_foreign_key_and_a_check(
        self, pg: DatabaseManager
    ) -> None:
        reference = await failure(pg, "INSERT INTO kids VALUES (1, 99, 1)")
        assert "kids_parent_id_fkey" in str(reference)
        check = await failure(pg, "INSERT INTO kids VALUES (1, 1, -1)")
        assert _field(check) == ("ck_kids_age", "check")

    async def test_a_check_over_two_columns_names_the_first_as_the_field(
        self, pg: DatabaseManager
    ) -> None:
        """PostgreSQL names only the constraint: its columns come from the table metadata."""
        async with pg.engine.begin() as connection:
            await connection.run_sync(RANGES.drop_all)
            await connection.run_sync(RANGES.create_all)
        with pytest.raises(InvalidInputError) as raised:
            async with asyncio.timeout(BOUND), pg.engine.begin() as connection:
                with translating_errors():
                    await connection.execute(insert(ranges).values(id=1, lo=5, hi=1))
        assert _field(raised.value) == ("lo", "check")
        assert "check constraint (lo, hi)" in str(raised.value)

    async def test_another_integrity_violation_is_a_409_naming_the_constraint(
        self, pg: DatabaseManager
    ) -> None:
        """An exclusion constraint (SQLSTATE 23P01): neither duplicate nor foreign key."""
        error = await failure(
            pg,
            "CREATE TEMP TABLE slots (n INT, EXCLUDE USING btree (n WITH =))",
            "INSERT INTO slots VALUES (1), (1)",
        )
        assert type(error) is IntegrityViolationError
        assert error.status == 409
        assert "(n)" in str(error)


class TestPostgresStates:
    """SQLSTATE classes 22, 40, 57, 08 and the rest."""

    async def test_data_errors_are_422_naming_the_sqlstate(self, pg: DatabaseManager) -> None:
        error = await failure(pg, "SELECT 1 / 0")
        assert _field(error) == ("value", "data")
        assert "SQLSTATE 22012" in str(error)

    async def test_a_statement_timeout_is_a_504_and_not_transient(
        self, pg: DatabaseManager
    ) -> None:
        error = await failure(pg, "SET LOCAL statement_timeout = 1", "SELECT pg_sleep(5)")
        assert type(error) is StatementTimeoutError
        assert error.status == 504
        assert not is_transient(error)

    async def test_a_serialization_failure_is_a_transient_conflict(
        self, pg: DatabaseManager
    ) -> None:
        await self._with_two(pg, deadlock=False)

    async def test_a_deadlock_is_a_transient_conflict(self, pg: DatabaseManager) -> None:
        await self._with_two(pg, deadlock=True)

    async def _with_two(self, pg: DatabaseManager, *, deadlock: bool) -> None:
        async with asyncio.timeout(BOUND):
            # AUTOCOMMIT: the test's own BEGIN and COMMIT decide where transactions are.
            first = await (await pg.engine.connect()).execution_options(
                isolation_level="AUTOCOMMIT"
            )
            second = await (await pg.engine.connect()).execution_options(
                isolation_level="AUTOCOMMIT"
            )
            try:
                await self._collide(first, second, deadlock=deadlock)
            finally:
                await first.close()
                await second.close()

    @staticmethod
    async def _collide(first: AsyncConnection, second: AsyncConnection, *, deadlock: bool) -> None:
        await pg_exec(first, "INSERT INTO parents VALUES (2, 'bob')")
        if deadlock:
            await pg_exec(first, "BEGIN", "UPDATE parents SET name = 'a1' WHERE id = 1")
            await pg_exec(second, "BEGIN", "UPDATE parents SET name = 'b1' WHERE id = 2")
            blocked = asyncio.ensure_future(
                pg_exec(first, "UPDATE parents SET name = 'a2' WHERE id = 2")
            )
            statements = ["UPDATE parents SET name = 'b2' WHERE id = 1"]
        else:
            await pg_exec(first, "BEGIN ISOLATION LEVEL SERIALIZABLE", "SELECT * FROM parents")
            await pg_exec(second, "BEGIN ISOLATION LEVEL SERIALIZABLE", "SELECT * FROM parents")
            await pg_exec(first, "UPDATE parents SET name = 'a2' WHERE id = 1", "COMMIT")
            blocked = None
            statements = ["UPDATE parents SET name = 'b2' WHERE id = 1"]
        errors: list[BaseException] = []
        for connection, job in ((second, pg_exec(second, *statements)),):
            try:
                with translating_errors():
                    await job
            except AegisError as exc:
                errors.append(exc)
            await pg_exec(connection, "ROLLBACK")
        if blocked is not None:
            try:
                with translating_errors():
                    await blocked
            except AegisError as exc:  # PostgreSQL may pick either side as the victim
                errors.append(exc)
            await pg_exec(first, "ROLLBACK")
        (error,) = errors
        assert type(error) is ConcurrentUpdateError
        assert error.status == 409
        code = "40P01" if deadlock else "40001"
        assert f"SQLSTATE {code}" in str(error)
        assert is_transient(error)
        assert sqlstate_of(error.__cause__ or error) == code

    async def test_a_terminated_connection_is_unavailable_and_transient(
        self, pg: DatabaseManager
    ) -> None:
        error = await failure(pg, "SELECT pg_terminate_backend(pg_backend_pid())")
        assert type(error) is DatabaseUnavailableError
        assert error.status == 503
        assert is_transient(error)

    async def test_other_states_are_a_database_error_naming_the_sqlstate(
        self, pg: DatabaseManager
    ) -> None:
        error = await failure(pg, "SELECT * FROM no_such_table")
        assert type(error) is DatabaseError
        assert "SQLSTATE 42P01" in str(error)
        assert not is_transient(error)

    async def test_an_exception_raised_in_plpgsql_is_a_database_error_not_a_timeout(
        self, pg: DatabaseManager
    ) -> None:
        """SQLSTATE P0001, as a trigger or function that rejects a change raises it."""
        error = await failure(pg, "DO $$ BEGIN RAISE EXCEPTION 'rejected'; END $$")
        assert type(error) is DatabaseError
        assert error.status == 500
        assert "SQLSTATE P0001" in str(error)


class TestSQLiteCodes:
    """SQLite's extended result codes."""

    async def test_a_locked_database_is_a_transient_conflict(
        self, lite: DatabaseManager, tmp_path: Path
    ) -> None:
        other = DatabaseManager(
            DatabaseSettings(url=SecretStr(f"sqlite:///{tmp_path / 'e.db'}?timeout=0"))
        )
        try:
            async with asyncio.timeout(BOUND), lite.engine.begin() as holder:
                await holder.execute(text("INSERT INTO parents VALUES (4, 'dan')"))  # write lock
                error = await failure(other, "INSERT INTO parents VALUES (5, 'eve')")
        finally:
            await other.dispose()
        assert type(error) is ConcurrentUpdateError
        assert is_transient(error)

    @pytest.mark.parametrize(
        "table",
        ["CREATE TABLE t (n INTEGER PRIMARY KEY)", "CREATE TABLE t (n INTEGER) STRICT"],
    )
    async def test_a_datatype_mismatch_is_a_422(self, lite: DatabaseManager, table: str) -> None:
        """SQLITE_MISMATCH (rowid) and SQLITE_CONSTRAINT_DATATYPE (a STRICT table)."""
        error = await failure(lite, table, "INSERT INTO t VALUES ('x')")
        assert _field(error) == ("value", "data")
        assert not is_transient(error)

    async def test_other_codes_are_a_database_error_naming_the_code(
        self, lite: DatabaseManager
    ) -> None:
        error = await failure(lite, "SELECT * FROM no_such_table")
        assert type(error) is DatabaseError
        assert "SQLite code 1)" in str(error)

    async def test_a_write_after_another_commit_in_wal_mode_is_a_transient_conflict(
        self, lite: DatabaseManager
    ) -> None:
        """SQLITE_BUSY_SNAPSHOT (517), an extended busy code: the primary code is its low byte."""
        with pytest.raises(AegisError) as raised:
            async with asyncio.timeout(BOUND), lite.engine.begin() as reader:
                with translating_errors():
                    await reader.execute(text("SELECT * FROM parents"))  # the read snapshot
                    async with lite.engine.begin() as writer:
                        await writer.execute(text("INSERT INTO parents VALUES (2, 'bob')"))
                    await reader.execute(text("INSERT INTO parents VALUES (3, 'cat')"))
        error = raised.value
        assert type(error) is ConcurrentUpdateError
        assert error.status == 409
        assert error.details == {"sqlite_code": 517}
        assert is_transient(error)
        assert is_transient(error.__cause__ or error)

    async def test_a_file_that_is_not_a_database_is_a_database_error_not_an_unopenable_file(
        self, lite: DatabaseManager, tmp_path: Path
    ) -> None:
        """SQLITE_NOTADB (26): the file opens but holds no database; trying again will not help."""
        text_file = tmp_path / "notes.txt"
        text_file.write_text("not a database\n" * 100)
        error = await failure(
            lite, f"ATTACH DATABASE '{text_file}' AS other", "SELECT * FROM other.sqlite_master"
        )
        assert type(error) is DatabaseError
        assert error.status == 500
        assert "SQLite code 26)" in str(error)

    async def test_a_corrupt_index_is_a_database_error_not_an_unopenable_file(
        self, lite: DatabaseManager
    ) -> None:
        """SQLITE_CORRUPT_INDEX (779): damage stays a 500, never the 503 of "try again later"."""
        async with lite.engine.connect() as connection:
            # An index whose schema no longer matches its entries, as a damaged file would have.
            await pg_exec(
                connection,
                "CREATE INDEX ix_kids_age ON kids (age)",
                "INSERT INTO kids VALUES (1, 1, 5)",
                "PRAGMA writable_schema = ON",
                "UPDATE sqlite_master SET sql = 'CREATE INDEX ix_kids_age ON kids (parent_id)'"
                " WHERE name = 'ix_kids_age'",
                "PRAGMA writable_schema = OFF",
            )
            await connection.commit()
        await lite.engine.dispose()  # connections that read the old schema go
        error = await failure(lite, "DELETE FROM kids WHERE age = 5")
        assert type(error) is DatabaseError
        assert error.status == 500
        assert "SQLite code 779)" in str(error)
        assert not is_transient(error)


class TestWithoutAServer:
    """Errors that never carry a code: the chain, lost connections and pools."""

    @pytest.mark.parametrize(
        ("error", "status", "code", "title"),
        [
            (DuplicateError("x"), 409, "DB_DUPLICATE", "Duplicate value"),
            (
                ForeignKeyError("x"),
                409,
                "DB_FOREIGN_KEY",
                "Referenced row missing or still referenced",
            ),
            (StatementTimeoutError("x"), 504, "DB_TIMEOUT", "Database statement timed out"),
            (TransactionStateError("x"), 500, "DB_TRANSACTION_STATE", "Transaction used wrongly"),
        ],
    )
    def test_each_error_answers_with_its_status_code_and_title(
        self, error: AegisError, status: int, code: str, title: str
    ) -> None:
        problem = error.to_problem()
        assert (problem["status"], problem["code"], problem["title"]) == (status, code, title)

    def test_a_connect_failure_anywhere_in_the_chain_is_transient(self) -> None:
        error = DatabaseUnavailableError("x")
        error.__cause__ = ConnectFailure()
        assert is_transient(error)
        outer = ValueError("outer")
        outer.__cause__ = error
        assert is_transient(outer)

    def test_an_invalidated_connection_is_unavailable_and_transient(self) -> None:
        lost = sa_exc.DBAPIError("SELECT 1", None, OSError("reset"), connection_invalidated=True)
        assert type(translate_error(lost)) is DatabaseUnavailableError
        assert is_transient(lost)

    def test_a_driver_error_without_a_code(self) -> None:
        unreachable = sa_exc.OperationalError("SELECT 1", None, Exception("x"))
        assert type(translate_error(unreachable)) is DatabaseUnavailableError
        socket = sa_exc.DBAPIError("SELECT 1", None, OSError("refused"))
        assert type(translate_error(socket)) is DatabaseUnavailableError
        other = sa_exc.DBAPIError("SELECT 1", None, Exception("x"))
        assert type(translate_error(other)) is DatabaseError
        assert not is_transient(other)

    def test_an_error_already_translated_is_left_alone(self) -> None:
        assert translate_error(ConflictError("x")) is None


async def test_a_sqlite_file_that_cannot_be_opened_is_unavailable(lite: DatabaseManager) -> None:
    error = await failure(lite, "ATTACH DATABASE '/no/such/directory/x.db' AS other")
    assert type(error) is DatabaseUnavailableError
    assert error.status == 503

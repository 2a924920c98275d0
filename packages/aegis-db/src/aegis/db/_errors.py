"""Turn driver errors into aegis errors by SQLSTATE (PostgreSQL) or result code (SQLite).

Classification never reads the message text: messages change between server versions and
locales, and an ``OperationalError`` (a lost connection, a deadlock) must never pass for an
integrity error. The SQL parameters never appear in an aegis error's message.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from types import TracebackType
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import exc as orm_exc

from aegis.core.errors import (
    AegisError,
    ConflictError,
    DatabaseError,
    DatabaseUnavailableError,
    IntegrityViolationError,
    InvalidInputError,
    register_error_code,
)
from aegis.db._constraint_fields import driver_error, postgres_fields, sqlite_fields

if TYPE_CHECKING:
    import sqlite3

    from sqlalchemy.engine import ExceptionContext

register_error_code("DB_DUPLICATE", 409, "Duplicate value")
register_error_code("DB_FOREIGN_KEY", 409, "Referenced row missing or still referenced")
register_error_code("DB_TIMEOUT", 504, "Database statement timed out")
register_error_code("DB_TRANSACTION_STATE", 500, "Transaction used wrongly")

# SQLSTATE classes and codes, PostgreSQL appendix A.
_UNIQUE = "23505"
_FOREIGN_KEY = "23503"
_NOT_NULL = "23502"
_CHECK = "23514"
_SERIALIZATION_FAILURE = "40001"
_DEADLOCK = "40P01"
_QUERY_CANCELED = "57014"
UNAVAILABLE_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "53300", "08000", "08003", "08006"})
"""SQLSTATEs of a server that shut down, restarts, is full or dropped the connection."""

# SQLite extended result codes (https://sqlite.org/rescode.html).
_SQLITE_BUSY = 5
_SQLITE_LOCKED = 6
_SQLITE_CONSTRAINT_CHECK = 275
_SQLITE_CONSTRAINT_DATATYPE = 3091  # a value of the wrong type for a STRICT table's column
_SQLITE_CONSTRAINT_FOREIGNKEY = 787
_SQLITE_CONSTRAINT_NOTNULL = 1299
_SQLITE_CONSTRAINT_PRIMARYKEY = 1555
_SQLITE_CONSTRAINT_UNIQUE = 2067
_SQLITE_CANTOPEN = 14
_SQLITE_MISMATCH = 20

# Bound values no driver or server can take, whatever the column: text without a UTF-8 form
# (lone surrogates), integers beyond 64 bits (sqlite3 raises OverflowError, asyncpg a DataError)
# and, on PostgreSQL, NUL in text (asyncpg: SQLSTATE 22021; psycopg: a DataError without one).
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_DATA_EXCEPTION = "22000"  # asyncpg's code for a value it cannot encode
_CHARACTER_NOT_IN_REPERTOIRE = "22021"
_NUMERIC_VALUE_OUT_OF_RANGE = "22003"
_BIND_SUFFIX = re.compile(r"(?:_+\d+)+$")  # email_1, version__0: the column is the stem
_UNSTORABLE = {
    "unicode": "{field}: the text is not valid Unicode (a lone surrogate U+D800-U+DFFF)",
    "integer_range": "{field}: the integer is outside the signed 64-bit range",
    "nul": "{field}: the text contains a NUL character (U+0000), which PostgreSQL cannot store",
}


class DuplicateError(ConflictError):
    """A row with the same unique value exists (HTTP 409, code ``DB_DUPLICATE``).

    ``details`` name the ``constraint`` (PostgreSQL) and, where the driver reports them, the
    ``fields``; never the values.
    """

    default_code = "DB_DUPLICATE"


class ForeignKeyError(IntegrityViolationError):
    """A reference points at a missing row, or a referenced row is still in use (HTTP 409).

    Code ``DB_FOREIGN_KEY``; ``details`` name the ``constraint`` where the driver reports it.
    """

    default_code = "DB_FOREIGN_KEY"


class ConcurrentUpdateError(ConflictError):
    """Another transaction changed the same rows first (HTTP 409, code ``DB_CONFLICT``).

    Raised for a stale optimistic-lock ``version`` and for serialization failures or deadlocks
    that outlived their retries. Reload the row and try again.
    """

    default_code = "DB_CONFLICT"


class StatementTimeoutError(DatabaseError):
    """A statement ran longer than the configured statement timeout (HTTP 504, ``DB_TIMEOUT``)."""

    default_code = "DB_TIMEOUT"


class TransactionStateError(DatabaseError):
    """A transaction was used wrongly: a failed joined scope, a session shared across tasks.

    Code ``DB_TRANSACTION_STATE`` (HTTP 500): a programming error, not the client's.
    """

    default_code = "DB_TRANSACTION_STATE"


class ConnectFailure(Exception):  # noqa: N818 - a marker in a cause chain, never raised alone
    """Marks, in an error's cause chain, a connection attempt the server never answered.

    Refused, reset or timed-out sockets, and a multi-host URL none of whose hosts is the kind
    asked for (``target_session_attrs=read-write`` during a failover): trying again later may
    succeed. Errors the server answered with a SQLSTATE (a wrong password) are not marked.
    """


def sqlstate_of(exc: BaseException) -> str | None:
    """Return the SQLSTATE of a PostgreSQL error (asyncpg, psycopg), or ``None``."""
    orig = driver_error(exc)
    if orig is None:
        return None
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return code if isinstance(code, str) else None


def _sqlite_code(exc: BaseException) -> int | None:
    orig = driver_error(exc)
    # Looked up, not imported: a service on PostgreSQL never loads sqlite3, and no error can
    # come from a driver module that was never imported.
    driver = sys.modules.get("sqlite3")
    if driver is not None and isinstance(orig, driver.Error):
        return cast("sqlite3.Error", orig).sqlite_errorcode
    return None


def is_transient(exc: BaseException) -> bool:
    """Whether re-running the whole transaction may succeed.

    True for serialization failures, deadlocks, lost connections, a server that cannot be
    reached (refused, or not the primary while it fails over) and SQLite's busy or locked
    database, anywhere in the ``__cause__`` chain (so translated aegis errors count too).
    """
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ConnectFailure):
            return True
        if isinstance(seen, sa_exc.DBAPIError):
            if seen.connection_invalidated:
                return True
            code = sqlstate_of(seen)
            if code in {_SERIALIZATION_FAILURE, _DEADLOCK} or code in UNAVAILABLE_SQLSTATES:
                return True
            sqlite_code = _sqlite_code(seen)
            if sqlite_code is not None and sqlite_code & 0xFF in {_SQLITE_BUSY, _SQLITE_LOCKED}:
                return True
        seen = seen.__cause__
    return False


def translate_error(exc: BaseException) -> AegisError | None:
    """Return the aegis error for a SQLAlchemy/driver error, or ``None`` when it is not one.

    The caller raises the result ``from exc`` so the original stays chained.
    """
    if isinstance(exc, AegisError):
        return None
    if isinstance(exc, orm_exc.StaleDataError):
        return ConcurrentUpdateError(
            "the row was changed or deleted by another transaction since it was read; "
            "reload it and apply the change again"
        )
    if isinstance(exc, sa_exc.TimeoutError):
        return DatabaseUnavailableError(
            "no database connection became free in time (pool exhausted); "
            "raise pool_size/max_overflow or shorten transactions"
        )
    if not isinstance(exc, sa_exc.DBAPIError):
        return None
    if exc.connection_invalidated:
        return DatabaseUnavailableError("the database connection was lost; try again")
    code = sqlstate_of(exc)
    if code is not None:
        return _from_sqlstate(exc, code)
    sqlite_code = _sqlite_code(exc)
    if sqlite_code is not None:
        return _from_sqlite_code(exc, sqlite_code)
    if isinstance(exc, sa_exc.InterfaceError | sa_exc.OperationalError) or isinstance(
        exc.orig, OSError
    ):
        return DatabaseUnavailableError("the database cannot be reached; try again later")
    return DatabaseError("the database rejected the operation")


def _from_sqlstate(exc: BaseException, code: str) -> AegisError:
    fields = postgres_fields(exc)
    names = ", ".join(fields.get("fields", [])) or fields.get("constraint", "?")
    if code == _UNIQUE:
        return DuplicateError(f"a row with the same value already exists ({names})", details=fields)
    if code == _FOREIGN_KEY:
        return ForeignKeyError(
            "the referenced row does not exist, or the row is still referenced "
            f"({fields.get('constraint', '?')})",
            details=fields,
        )
    if code in {_NOT_NULL, _CHECK}:
        rule = "not_null" if code == _NOT_NULL else "check"
        field = fields.get("fields", [None])[0] or fields.get("constraint") or "value"
        return InvalidInputError(
            f"value breaks the {rule.replace('_', '-')} constraint ({names})",
            field=field,
            rule=rule,
        )
    if code.startswith("23"):
        return IntegrityViolationError(f"a constraint was violated ({names})", details=fields)
    if code.startswith("22"):
        return InvalidInputError(
            f"a value is not valid for its column (SQLSTATE {code})", field="value", rule="data"
        )
    if code in {_SERIALIZATION_FAILURE, _DEADLOCK}:
        return ConcurrentUpdateError(
            f"the transaction conflicted with a concurrent one (SQLSTATE {code}); run it again",
            details={"sqlstate": code},
        )
    if code == _QUERY_CANCELED:
        return StatementTimeoutError("the statement was cancelled: it exceeded the time limit")
    if code in UNAVAILABLE_SQLSTATES or code.startswith("08"):
        return DatabaseUnavailableError(
            f"the database connection was closed by the server (SQLSTATE {code}); try again"
        )
    return DatabaseError(f"the database rejected the operation (SQLSTATE {code})")


def _from_sqlite_code(exc: BaseException, code: int) -> AegisError:
    if code in {_SQLITE_CONSTRAINT_UNIQUE, _SQLITE_CONSTRAINT_PRIMARYKEY}:
        fields = sqlite_fields(exc)
        names = ", ".join(fields.get("fields", [])) or "?"
        return DuplicateError(f"a row with the same value already exists ({names})", details=fields)
    if code == _SQLITE_CONSTRAINT_FOREIGNKEY:
        return ForeignKeyError("the referenced row does not exist, or the row is still referenced")
    if code in {_SQLITE_CONSTRAINT_NOTNULL, _SQLITE_CONSTRAINT_CHECK}:
        rule = "not_null" if code == _SQLITE_CONSTRAINT_NOTNULL else "check"
        # A NOT NULL failure names the column; a CHECK failure names the constraint.
        named: list[str] = sqlite_fields(exc).get("fields") or ["value"]
        return InvalidInputError(
            f"value breaks the {rule.replace('_', '-')} constraint ({named[0]})",
            field=named[0],
            rule=rule,
        )
    if code & 0xFF in {_SQLITE_BUSY, _SQLITE_LOCKED}:
        return ConcurrentUpdateError(
            "the database is locked by a concurrent transaction; run it again",
            details={"sqlite_code": code},
        )
    if code in {_SQLITE_MISMATCH, _SQLITE_CONSTRAINT_DATATYPE}:
        return InvalidInputError(
            "a value is not valid for its column (datatype mismatch)", field="value", rule="data"
        )
    if code & 0xFF == _SQLITE_CANTOPEN:
        return DatabaseUnavailableError("the SQLite database file cannot be opened")
    return DatabaseError(f"the database rejected the operation (SQLite code {code})")


def _unstorable_kind(value: object, dialect: str) -> str | None:
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError:
            return "unicode"
        return "nul" if dialect == "postgresql" and "\x00" in value else None
    if isinstance(value, int) and not isinstance(value, bool):
        return None if _INT64_MIN <= value <= _INT64_MAX else "integer_range"
    return None


def _kinds_for(error: BaseException) -> frozenset[str]:
    """Which unstorable values can explain ``error`` (a driver's exception), by its type."""
    if isinstance(error, OverflowError):
        return frozenset({"integer_range"})
    if isinstance(error, UnicodeEncodeError):
        return frozenset({"unicode"})
    code = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
    if isinstance(error, ValueError) or code in {None, _DATA_EXCEPTION}:
        # psycopg2 refuses NUL with a bare ValueError; psycopg and asyncpg raise DBAPI errors
        # with no SQLSTATE (or 22000) for values they cannot encode.
        return frozenset(_UNSTORABLE)
    if code == _CHARACTER_NOT_IN_REPERTOIRE:
        return frozenset({"nul", "unicode"})
    if code == _NUMERIC_VALUE_OUT_OF_RANGE:
        return frozenset({"integer_range"})
    return frozenset()


def _named_values(context: ExceptionContext) -> Iterable[tuple[str, object]]:
    parameters: Any = context.parameters
    rows = parameters if isinstance(parameters, list) else [parameters]
    compiled = getattr(context.execution_context, "compiled", None)
    positions: Sequence[str] = getattr(compiled, "positiontup", None) or ()
    for row in rows:
        if isinstance(row, Mapping):
            yield from ((str(name), value) for name, value in row.items())
        elif isinstance(row, Sequence) and not isinstance(row, str | bytes):
            named = len(positions) == len(row)
            for index, value in enumerate(row):
                yield (str(positions[index]) if named else "value"), value


def unstorable_parameter_error(context: ExceptionContext) -> AegisError | None:
    """The 422 for a statement that failed on a bound value no database can store, else None.

    Installed on every engine as a SQLAlchemy ``handle_error`` hook by ``DatabaseManager``:
    sqlite3 raises a bare ``OverflowError`` or ``UnicodeEncodeError`` for such a value, which
    SQLAlchemy does not wrap, so it would reach the client as a 500. The error's type says
    which kinds of value can explain it; the bound values say which parameter it was. The
    error names the parameter (the column's name for INSERT and UPDATE), never the value.
    """
    lost = context.is_disconnect or isinstance(
        context.sqlalchemy_exception, sa_exc.OperationalError | sa_exc.InterfaceError
    )
    if context.parameters is None or lost:
        return None  # a lost connection stays a lost connection, whatever the values were
    kinds = _kinds_for(context.original_exception)
    if not kinds:
        return None
    dialect = context.dialect.name
    for name, value in _named_values(context):
        kind = _unstorable_kind(value, dialect)
        if kind in kinds:
            field = _BIND_SUFFIX.sub("", name) or "value"
            return InvalidInputError(_UNSTORABLE[kind].format(field=field), field=field, rule=kind)
    return None


class _TranslatingErrors:
    """The context manager of :func:`translating_errors`: stateless, so one serves every block.

    A class rather than a generator: it runs around every repository statement, and entering
    a generator-based context manager costs several times more.
    """

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if not isinstance(error, Exception):
            return  # no error, or KeyboardInterrupt / CancelledError: left as they are
        translated = translate_error(error)
        if translated is not None:
            raise translated from error


_TRANSLATING_ERRORS = _TranslatingErrors()


def translating_errors() -> AbstractContextManager[None]:
    """Re-raise SQLAlchemy and driver errors raised inside the block as aegis errors (chained)."""
    return _TRANSLATING_ERRORS

"""aegis.db: SQLAlchemy 2 async data access.

A :class:`DatabaseManager` owns the engines and opens sessions and transactions (SAVEPOINTs
when nested, on-commit callbacks, whole-transaction retries); :class:`BaseRepository` gives
typed CRUD with filters, sorting, offset and keyset pages and soft delete; database errors
come out as aegis errors classified by SQLSTATE. Read-only sessions read on replicas that
hold their scope's writes (:class:`ReadYourWritesMiddleware`), with lag and rotation metrics.
"""

from aegis.db.__about__ import __version__
from aegis.db._asgi import ReadYourWritesMiddleware, database_lifespan, session_dependency
from aegis.db._errors import (
    ConcurrentUpdateError,
    DuplicateError,
    ForeignKeyError,
    StatementTimeoutError,
    TransactionStateError,
    is_transient,
    sqlstate_of,
    translate_error,
    translating_errors,
)
from aegis.db._manager import DatabaseManager
from aegis.db._mixins import (
    SoftDeleteMixin,
    TimestampMixin,
    UTCDateTime,
    UUIDPrimaryKeyMixin,
    VersionMixin,
    utcnow,
)
from aegis.db._query import OPERATORS, Filter
from aegis.db._repository import BaseRepository
from aegis.db._retry import RetryPolicy, retry_on_transient
from aegis.db._session import INCLUDE_DELETED, AegisSession, OnCommitCallback, Propagation
from aegis.db._settings import DatabaseSettings, async_url

__all__ = [
    "INCLUDE_DELETED",
    "OPERATORS",
    "AegisSession",
    "BaseRepository",
    "ConcurrentUpdateError",
    "DatabaseManager",
    "DatabaseSettings",
    "DuplicateError",
    "Filter",
    "ForeignKeyError",
    "OnCommitCallback",
    "Propagation",
    "ReadYourWritesMiddleware",
    "RetryPolicy",
    "SoftDeleteMixin",
    "StatementTimeoutError",
    "TimestampMixin",
    "TransactionStateError",
    "UTCDateTime",
    "UUIDPrimaryKeyMixin",
    "VersionMixin",
    "__version__",
    "async_url",
    "database_lifespan",
    "is_transient",
    "retry_on_transient",
    "session_dependency",
    "sqlstate_of",
    "translate_error",
    "translating_errors",
    "utcnow",
]

"""aegis.db: SQLAlchemy 2 async data access.

A :class:`DatabaseManager` owns the engines and opens sessions and transactions (SAVEPOINTs
when nested, on-commit callbacks, whole-transaction retries); :class:`BaseRepository` gives
typed CRUD with filters, sorting, offset and keyset pages and soft delete; database errors
come out as aegis errors classified by SQLSTATE. Read-only sessions read on replicas that
hold their scope's writes (:class:`ReadYourWritesMiddleware`), with lag and rotation metrics.
"""

from typing import TYPE_CHECKING

from aegis.core.utils.lazy import lazy_getattr
from aegis.db.__about__ import __version__
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

if TYPE_CHECKING:
    from aegis.db._asgi import ReadYourWritesMiddleware, database_lifespan, session_dependency
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

# Every name but the errors (which register their codes) is imported on first use (PEP 562),
# so that `import aegis.db` costs almost nothing: the settings build pydantic models, the
# repository and mixins SQLAlchemy's ORM (benchmarks/import_time.py).
_LAZY = {
    "AegisSession": "aegis.db._session",
    "BaseRepository": "aegis.db._repository",
    "DatabaseManager": "aegis.db._manager",
    "DatabaseSettings": "aegis.db._settings",
    "Filter": "aegis.db._query",
    "INCLUDE_DELETED": "aegis.db._session",
    "OPERATORS": "aegis.db._query",
    "OnCommitCallback": "aegis.db._session",
    "Propagation": "aegis.db._session",
    "ReadYourWritesMiddleware": "aegis.db._asgi",
    "RetryPolicy": "aegis.db._retry",
    "SoftDeleteMixin": "aegis.db._mixins",
    "TimestampMixin": "aegis.db._mixins",
    "UTCDateTime": "aegis.db._mixins",
    "UUIDPrimaryKeyMixin": "aegis.db._mixins",
    "VersionMixin": "aegis.db._mixins",
    "async_url": "aegis.db._settings",
    "database_lifespan": "aegis.db._asgi",
    "retry_on_transient": "aegis.db._retry",
    "session_dependency": "aegis.db._asgi",
    "utcnow": "aegis.db._mixins",
}

__getattr__ = lazy_getattr(__name__, _LAZY)

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

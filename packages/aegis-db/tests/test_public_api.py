"""The public names of aegis.db: an addition or removal shows up here in review."""

from __future__ import annotations

import aegis.db
from aegis.core.errors import ERROR_CODES

PUBLIC = [
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


def test_public_names_are_exactly_these() -> None:
    assert aegis.db.__all__ == PUBLIC
    assert all(hasattr(aegis.db, name) for name in PUBLIC)


def test_error_codes_are_registered_with_their_status() -> None:
    expected = {"DB_DUPLICATE": 409, "DB_FOREIGN_KEY": 409, "DB_TIMEOUT": 504}
    assert {code: ERROR_CODES[code].status for code in expected} == expected
    assert aegis.db.ConcurrentUpdateError("x").code == "DB_CONFLICT"
    assert aegis.db.TransactionStateError("x").status == 500

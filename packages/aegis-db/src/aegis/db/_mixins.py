"""Declarative mixins: UUIDv7 primary key, database-set timestamps, soft delete, version column.

Use them with your own ``DeclarativeBase``::

    class Base(DeclarativeBase):
        pass


    class User(UUIDPrimaryKeyMixin, TimestampMixin, SoftDeleteMixin, VersionMixin, Base):
        __tablename__ = "users"
        email: Mapped[str]
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Dialect, Integer, Uuid
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Mapped, declared_attr, mapped_column
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import TypeDecorator

from aegis.core.models import uuid7


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware timestamp stored in UTC; always read back with ``tzinfo=UTC``.

    PostgreSQL stores ``timestamptz``; SQLite stores text without a zone, which this type reads
    back as UTC instead of as a naive datetime. Naive datetimes are refused on write, since
    their zone would be a guess.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    @property
    def python_type(self) -> type[datetime]:
        """Values are :class:`~datetime.datetime` objects."""
        return datetime

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Convert to UTC before writing; a naive datetime raises ``ValueError``."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime refused: give it a time zone (e.g. tzinfo=UTC)")
        converted = value.astimezone(UTC)
        return converted.replace(tzinfo=None) if dialect.name == "sqlite" else converted

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Attach UTC to SQLite's zone-less text and normalise PostgreSQL's to UTC."""
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class utcnow(FunctionElement[datetime]):  # noqa: N801 - a SQL function reads like one
    """The database's current time in UTC: ``now()`` on PostgreSQL, millisecond text on SQLite."""

    type = UTCDateTime()
    inherit_cache = True


@compiles(utcnow)
def _utcnow_default(element: utcnow, compiler: SQLCompiler, **kw: Any) -> str:
    return "CURRENT_TIMESTAMP"


@compiles(utcnow, "postgresql")
def _utcnow_postgresql(element: utcnow, compiler: SQLCompiler, **kw: Any) -> str:
    return "now()"


@compiles(utcnow, "sqlite")
def _utcnow_sqlite(element: utcnow, compiler: SQLCompiler, **kw: Any) -> str:
    # CURRENT_TIMESTAMP has whole seconds only. Keep milliseconds, written with six fraction
    # digits like the values SQLAlchemy binds, so the stored text compares correctly with them.
    return "(strftime('%Y-%m-%d %H:%M:%f000', 'now'))"


def _mapper_args(cls: Any) -> dict[str, Any]:
    # Fetch database-set values (timestamps, version) with RETURNING after INSERT and UPDATE:
    # an expired attribute would otherwise need a lazy load, which async sessions cannot do.
    args: dict[str, Any] = {"eager_defaults": True}
    if issubclass(cls, VersionMixin):
        args["version_id_col"] = cls.__table__.c.version
    return args


class UUIDPrimaryKeyMixin:
    """``id``: a UUIDv7 primary key made in Python by :func:`aegis.core.models.uuid7`.

    Version 7 ids sort by creation time, which keeps B-tree inserts local; there is no silent
    fallback to random version 4 ids.
    """

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid7)


class TimestampMixin:
    """``created_at`` and ``updated_at`` set by the database on insert and on every update."""

    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime, server_default=utcnow(), nullable=False
    )
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime, server_default=utcnow(), onupdate=utcnow(), nullable=False
    )

    @declared_attr.directive
    def __mapper_args__(cls) -> dict[str, Any]:
        """Fetch database-set values after writes (and wire ``version`` when present)."""
        return _mapper_args(cls)


class SoftDeleteMixin:
    """``deleted_at``: set instead of deleting the row.

    Sessions from :class:`DatabaseManager` leave soft-deleted rows out of every ORM query,
    count and relationship load, unless the statement has the execution option
    ``include_deleted=True``. Make unique constraints partial (``WHERE deleted_at IS NULL``) so a
    deleted row does not block a new one with the same value.
    """

    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None, index=True)


class VersionMixin:
    """``version``: an optimistic-lock counter checked and raised by every ORM update.

    A flush that finds another version raises ``StaleDataError``, which aegis.db reports as
    :class:`ConcurrentUpdateError`.
    """

    version: Mapped[int] = mapped_column(Integer, nullable=False)

    @declared_attr.directive
    def __mapper_args__(cls) -> dict[str, Any]:
        """Register ``version`` as the mapper's ``version_id_col``."""
        return _mapper_args(cls)

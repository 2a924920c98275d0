"""The base of persisted entities: a UUIDv7 id and UTC timestamps that refuse naive datetimes."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    model_validator,
)
from pydantic_core import PydanticCustomError

from aegis.core.models._ids import uuid7
from aegis.core.utils.datetime import format_datetime


def _now() -> datetime:
    return datetime.now(UTC)


def _require_aware_utc(value: datetime) -> datetime:
    if value.utcoffset() is None:
        raise PydanticCustomError(
            "timezone_aware",
            "naive datetime {value} refused: add a UTC offset or Z, e.g. 2026-01-02T03:04:05Z",
            {"value": value.isoformat()},
        )
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise PydanticCustomError(
            "datetime_range", "{value} is outside the range of UTC datetimes", {"value": str(value)}
        ) from None


UtcDatetime = Annotated[
    datetime,
    AfterValidator(_require_aware_utc),
    PlainSerializer(format_datetime, return_type=str, when_used="json"),
]
"""A timezone-aware datetime stored in UTC and written to JSON as ``2026-01-02T03:04:05.123456Z``.

Naive datetimes (and strings without an offset) are refused; other zones are converted to UTC.
"""


class BaseEntity(BaseModel):
    """Base of entities: ``id`` (UUIDv7), ``created_at``, ``updated_at``, ``deleted_at`` in UTC.

    A new entity gets one timestamp for both ``created_at`` and ``updated_at``. Datetimes must
    carry a zone (naive ones raise a ``ValidationError`` of type ``timezone_aware``) and are
    stored in UTC, on construction and on assignment. ``from_attributes`` lets an ORM row be
    validated directly.

    Example:
        >>> class User(BaseEntity):
        ...     name: str
        >>> user = User(name="kim")
        >>> user.is_deleted
        False
        >>> User.model_validate(orm_row)  # any object with matching attributes
    """

    model_config = ConfigDict(from_attributes=True, validate_assignment=True)

    id: UUID = Field(default_factory=uuid7)
    created_at: UtcDatetime = Field(default_factory=_now)
    updated_at: UtcDatetime = Field(default_factory=_now)
    deleted_at: UtcDatetime | None = None

    @model_validator(mode="before")
    @classmethod
    def _one_timestamp_for_new_entities(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "created_at" not in data and "updated_at" not in data:
            now = _now()
            return {**data, "created_at": now, "updated_at": now}
        return data

    @property
    def is_deleted(self) -> bool:
        """Whether the entity is soft-deleted (``deleted_at`` is set)."""
        return self.deleted_at is not None

"""The ``Event`` base model: a CloudEvents 1.0 envelope around typed ``data``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Generic, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from aegis.core.models import uuid7_str

DataT = TypeVar("DataT")

SPEC_VERSION = "1.0"
"""The CloudEvents specification version every event declares."""


def new_event_id() -> str:
    """Return a new event id: a UUIDv7 string (RFC 9562), so ids sort by creation time.

    The text of :func:`aegis.core.models.uuid7_str`: ids made in one process strictly increase.
    Event ids are identifiers, never secrets.
    """
    return uuid7_str()


def _utc(value: datetime) -> datetime:
    offset = value.utcoffset()
    if offset is None:
        raise ValueError("event time must carry a time zone")
    # Already UTC (whichever tzinfo object says so): keep it, astimezone costs per event.
    return value if not offset else value.astimezone(UTC)


def _now() -> datetime:
    return datetime.now(UTC)


class Event(BaseModel, Generic[DataT]):
    """Base of every event: the CloudEvents 1.0 envelope plus typed ``data``.

    A concrete event names its CloudEvents ``type`` and its schema ``version`` as class
    attributes; ``id`` and ``time`` are filled when the event is created, and ``source``,
    ``correlationid``, ``causationid`` and ``traceparent`` when it is published (from the
    publisher, :mod:`aegis.core.context` and OpenTelemetry) unless set here.

    Class attributes:
        type: the CloudEvents ``type`` (``aegis.user.created``); required.
        version: the schema version of ``data`` (a major version: a change a reader of the old
            version cannot read). Sent as the ``schemaversion`` extension.
        topic: default topic to publish to and subscribe on.
        key_field: name of the ``data`` attribute whose value is the message key (the partition
            key), so the events of one entity stay in order.
        dataschema: optional URI of the data's schema (``ce_dataschema``).

    Example:
        >>> class UserCreatedData(BaseModel):
        ...     user_id: str
        ...     email: str
        >>> class UserCreated(Event[UserCreatedData]):
        ...     type = "aegis.user.created"
        ...     version = 2
        ...     topic = "users"
        ...     key_field = "user_id"
        >>> UserCreated(data=UserCreatedData(user_id="u1", email="a@b.c")).message_key()
        'u1'
    """

    model_config = ConfigDict(frozen=True)

    type: ClassVar[str] = ""
    version: ClassVar[int] = 1
    topic: ClassVar[str | None] = None
    key_field: ClassVar[str | None] = None
    dataschema: ClassVar[str | None] = None
    specversion: ClassVar[str] = SPEC_VERSION
    datacontenttype: ClassVar[str] = "application/json"

    id: str = Field(default_factory=uuid7_str, min_length=1)
    source: str | None = Field(default=None, min_length=1)
    time: Annotated[datetime, AfterValidator(_utc)] = Field(default_factory=_now)
    subject: str | None = None
    correlationid: str | None = None
    causationid: str | None = None
    traceparent: str | None = None
    partitionkey: str | None = None
    data: DataT

    @property
    def schemaversion(self) -> str:
        """The ``schemaversion`` extension: this class's ``version`` as text."""
        return str(self.version)

    def message_key(self) -> str | None:
        """Return the Kafka message key: ``partitionkey`` if set, else the ``key_field`` value."""
        if self.partitionkey is not None:
            return self.partitionkey
        if self.key_field is None:
            return None
        value: Any = getattr(self.data, self.key_field)
        return None if value is None else str(value)


def data_type_of(event_type: type[Event[Any]]) -> Any:
    """Return the annotation of ``event_type``'s ``data`` field (the type payloads validate to)."""
    return event_type.model_fields["data"].annotation

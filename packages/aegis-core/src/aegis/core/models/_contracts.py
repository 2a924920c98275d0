"""Versioned data contracts that services exchange: who did something, and the audit trail.

Versioning rule: a contract's ``schema_version`` is ``MAJOR.MINOR``. Within a major, changes are
additive only: a new minor may add optional fields (with defaults), never remove, rename or
tighten one. A reader therefore accepts any minor of its own major and ignores the fields it does
not know (``extra="ignore"``), so an old consumer keeps working when a producer moves ahead. A
breaking change is a new major and a new model (``UserRefV2``); a payload of another major is
refused, never half-read.
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)
from pydantic_core import PydanticCustomError

from aegis.core.models._entity import UtcDatetime, _now

SchemaVersion = Annotated[str, StringConstraints(pattern=r"^[1-9][0-9]{0,3}\.[0-9]{1,4}$")]
"""A ``MAJOR.MINOR`` contract version such as ``1.0``."""


def _uuid_as_text(value: object) -> object:
    return str(value) if isinstance(value, UUID) else value


SubjectId = Annotated[
    str,
    BeforeValidator(_uuid_as_text),
    StringConstraints(strip_whitespace=True, min_length=1, max_length=255),
]
"""The id of a user or service account: a UUID or an identity provider's ``sub``, as text."""


class Contract(BaseModel):
    """Base of versioned contracts: frozen, tolerant of unknown fields, refuses another major.

    A subclass declares its version explicitly, and bumps the default with each additive change::

        class UserRef(Contract):
            schema_version: SchemaVersion = "1.1"

    After validation ``schema_version`` is the version of the model that read the payload: the
    fields of a newer minor were dropped, so the object holds exactly what its version says.
    """

    model_config = ConfigDict(extra="ignore", frozen=True, from_attributes=True)

    schema_version: SchemaVersion = "1.0"

    @field_validator("schema_version")
    @classmethod
    def _same_major(cls, value: str) -> str:
        ours = cls.model_fields["schema_version"].default
        if value.partition(".")[0] != str(ours).partition(".")[0]:
            raise PydanticCustomError(
                "schema_major",
                "schema_version {received} cannot be read by {model} {ours}: a different major "
                "version is a different contract",
                {"received": value, "model": cls.__name__, "ours": ours},
            )
        return str(ours)


class UserRef(Contract):
    """A reference to a user or service account, enough to show and audit who acted.

    Example:
        >>> UserRef(id="019b76da-a800-7000-8000-000000000000", username="kim")
    """

    schema_version: SchemaVersion = "1.0"

    id: SubjectId
    username: Annotated[str, StringConstraints(min_length=1, max_length=150)] | None = None
    email: (
        Annotated[str, StringConstraints(max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")] | None
    ) = None
    display_name: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None


class AuditInfo(Contract):
    """Who created and last changed a record, when, and why (times in UTC).

    Example:
        >>> AuditInfo(created_by=UserRef(id="u-1"), reason="import from CRM")
    """

    schema_version: SchemaVersion = "1.0"

    created_by: UserRef | None = None
    created_at: UtcDatetime = Field(default_factory=_now)
    updated_by: UserRef | None = None
    updated_at: UtcDatetime | None = None
    reason: Annotated[str, StringConstraints(max_length=1000)] | None = None
    request_id: Annotated[str, StringConstraints(max_length=200)] | None = None

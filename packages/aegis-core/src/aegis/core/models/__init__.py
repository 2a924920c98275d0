"""Shared models: UUIDv7 ids, the entity base, versioned contracts, enums, pagination, safe fields.

Importing this package needs only the standard library and pydantic.

Example:
    >>> from aegis.core.models import BaseEntity, PageParams, PaginatedResponse
    >>> class User(BaseEntity):
    ...     name: str
    >>> PaginatedResponse[User].create([User(name="kim")], total=1, params=PageParams())
"""

from aegis.core.models._contracts import AuditInfo, Contract, SchemaVersion, SubjectId, UserRef
from aegis.core.models._entity import BaseEntity, UtcDatetime
from aegis.core.models._enums import (
    ENVIRONMENT_ALIASES,
    WILDCARD,
    EntityStatus,
    Environment,
    Permission,
    Role,
    has_permission,
)
from aegis.core.models._ids import uuid7, uuid7_str, uuid7_timestamp
from aegis.core.models._pagination import (
    CursorPage,
    PageParams,
    PaginatedResponse,
    SortDirection,
    SortField,
)
from aegis.core.models._safe import Int64, SafeStr

__all__ = [
    "ENVIRONMENT_ALIASES",
    "WILDCARD",
    "AuditInfo",
    "BaseEntity",
    "Contract",
    "CursorPage",
    "EntityStatus",
    "Environment",
    "Int64",
    "PageParams",
    "PaginatedResponse",
    "Permission",
    "Role",
    "SafeStr",
    "SchemaVersion",
    "SortDirection",
    "SortField",
    "SubjectId",
    "UserRef",
    "UtcDatetime",
    "has_permission",
    "uuid7",
    "uuid7_str",
    "uuid7_timestamp",
]

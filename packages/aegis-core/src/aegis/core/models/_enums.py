"""Shared vocabularies: entity status, base roles, deployment environment, and permissions."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Self

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

from aegis.core.errors import InvalidInputError


class EntityStatus(StrEnum):
    """The lifecycle state of a record."""

    ACTIVE = "active"
    INACTIVE = "inactive"
    PENDING = "pending"
    SUSPENDED = "suspended"
    ARCHIVED = "archived"
    DELETED = "deleted"


class Role(StrEnum):
    """The base roles every service understands; services may define finer roles of their own.

    ``admin`` may do everything, ``user`` acts on their own data, ``viewer`` only reads, and
    ``service`` is another service calling with a service account.
    """

    ADMIN = "admin"
    USER = "user"
    VIEWER = "viewer"
    SERVICE = "service"


ENVIRONMENT_ALIASES: Mapping[str, str] = MappingProxyType(
    {
        "dev": "development",
        "local": "development",
        "testing": "test",
        "stage": "staging",
        "prod": "production",
    }
)
"""Short names ``Environment(...)`` also accepts, mapped to the environment's value."""


class Environment(StrEnum):
    """The deployment environment a service runs in.

    Lookup ignores case and surrounding spaces and knows the usual short names (``dev``,
    ``local``, ``testing``, ``stage``, ``prod``), so ``Environment("PROD")`` is ``PRODUCTION``.
    """

    DEVELOPMENT = "development"
    TEST = "test"
    STAGING = "staging"
    PRODUCTION = "production"

    @classmethod
    def _missing_(cls, value: object) -> Environment | None:
        if not isinstance(value, str):
            return None
        key = value.strip().lower()
        key = ENVIRONMENT_ALIASES.get(key, key)
        return next((member for member in cls if member.value == key), None)

    @property
    def is_production(self) -> bool:
        """Whether this is ``production``, where debug features must be off."""
        return self is Environment.PRODUCTION


_PERMISSION_PART = r"(?:[a-z0-9_-]+|\*)"
_PERMISSION_PATTERN = re.compile(rf"({_PERMISSION_PART}):({_PERMISSION_PART})")
_PERMISSION_MAX_LENGTH = 128
WILDCARD = "*"
"""Matches any resource or any action in a granted permission."""


class Permission(str):
    """A permission string ``resource:action`` such as ``policy:read``.

    Both parts are lowercase ``[a-z0-9_-]+`` or the wildcard ``*``; at most 128 characters.
    A *granted* permission matches a *required* one when each of its parts is equal or ``*``:
    ``policy:*`` grants ``policy:read``, ``*:read`` grants ``user:read``, ``*:*`` grants all.
    A required ``policy:*`` ("every action on policies") is met only by a granted ``policy:*``
    or ``*:*``. It is a ``str``, so it compares, hashes and serializes as its text, and works as
    a pydantic field type.

    Raises:
        InvalidInputError: the text is not ``resource:action`` (field ``permission``, rule
            ``permission_format``).

    Example:
        >>> Permission("policy:*").matches("policy:read")
        True
    """

    __slots__ = ()

    def __new__(cls, value: str) -> Self:
        if type(value) is cls:
            return value
        if (
            not isinstance(value, str)
            or len(value) > _PERMISSION_MAX_LENGTH
            or _PERMISSION_PATTERN.fullmatch(value) is None
        ):
            raise InvalidInputError(
                f"permission {str(value)[:_PERMISSION_MAX_LENGTH]!r} must be 'resource:action' "
                "in lowercase letters, digits, '_' or '-', or '*' (e.g. 'policy:read')",
                field="permission",
                rule="permission_format",
            )
        return super().__new__(cls, value)

    @property
    def resource(self) -> str:
        """The part before the colon (``policy`` in ``policy:read``)."""
        return self.partition(":")[0]

    @property
    def action(self) -> str:
        """The part after the colon (``read`` in ``policy:read``)."""
        return self.partition(":")[2]

    def matches(self, required: str) -> bool:
        """Whether this granted permission allows ``required`` (see the class docstring).

        Raises:
            InvalidInputError: ``required`` is not a valid permission.
        """
        wanted = Permission(required)
        return self.resource in (WILDCARD, wanted.resource) and self.action in (
            WILDCARD,
            wanted.action,
        )

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        """Validate as a string, then as a permission; serialize as the plain string."""
        return core_schema.no_info_after_validator_function(
            cls._from_pydantic,
            core_schema.str_schema(),
            serialization=core_schema.to_string_ser_schema(),
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        """Describe the format in JSON Schema (OpenAPI) as a pattern."""
        return {
            "type": "string",
            "pattern": f"^{_PERMISSION_PATTERN.pattern}$",
            "maxLength": _PERMISSION_MAX_LENGTH,
            "examples": ["policy:read", "policy:*"],
        }

    @classmethod
    def _from_pydantic(cls, value: str) -> Permission:
        try:
            return cls(value)
        except InvalidInputError as exc:
            raise PydanticCustomError(
                "permission_format", "{message}", {"message": exc.message}
            ) from None


def has_permission(granted: Iterable[str], required: str) -> bool:
    """Whether any of the ``granted`` permissions allows ``required`` (wildcards apply).

    Raises:
        InvalidInputError: a granted or the required permission is malformed; a misspelt grant
            is a configuration mistake, so it is reported, not skipped.

    Example:
        >>> has_permission(["user:read", "policy:*"], "policy:delete")
        True
    """
    wanted = Permission(required)
    return any(Permission(permission).matches(wanted) for permission in granted)

"""The registry's models: a table's columns, references, indexes and version."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, model_validator

from aegis.schema._types import ColumnType

_IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]{0,62}$"  # PostgreSQL truncates names past 63 bytes
_VERSION = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")

Identifier = Annotated[str, Field(pattern=_IDENTIFIER)]
"""A table, column, index or service name: letters, digits and ``_``, at most 63 characters."""

ReferentialAction = Literal["NO ACTION", "RESTRICT", "CASCADE", "SET NULL", "SET DEFAULT"]
"""What a reference does when the referenced row is deleted or its key updated."""


def parse_version(version: str) -> tuple[int, int, int]:
    """Return ``(major, minor, patch)`` of a ``MAJOR.MINOR.PATCH`` version.

    Raises:
        ValueError: ``version`` is not three dot-separated whole numbers.
    """
    match = _VERSION.match(version)
    if match is None:
        raise ValueError(f"version {version!r} must be MAJOR.MINOR.PATCH, such as 1.0.0")
    return int(match.group(1)), int(match.group(2)), int(match.group(3))


def _version(value: object) -> object:
    if isinstance(value, bool):
        return value  # let pydantic refuse it as a string
    if isinstance(value, int):
        return f"{value}.0.0"
    if isinstance(value, float):
        raise ValueError(
            f"version {value!r} reads as a number: write MAJOR.MINOR.PATCH, such as 1.0.0"
        )
    if isinstance(value, str):
        parse_version(value)
    return value


def _column_type(value: object) -> object:
    return str(ColumnType.parse(value)) if isinstance(value, str) else value


def _action(value: object) -> object:
    return " ".join(value.upper().split()) if isinstance(value, str) else value


Version = Annotated[str, BeforeValidator(_version)]
"""A ``MAJOR.MINOR.PATCH`` schema version; a whole number ``2`` means ``2.0.0``."""

PortableType = Annotated[str, BeforeValidator(_column_type)]
"""A portable column type, stored in its canonical spelling (``numeric(10,2)``)."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SchemaColumn(_Model):
    """One column of a table.

    ``unique`` adds a unique index ``uq_<table>_<column>``, ``index`` a plain index
    ``ix_<table>_<column>``. ``default`` is a literal value written as the column's server
    default; the string ``CURRENT_TIMESTAMP`` means the database's current time. A primary key
    column is never nullable. ``renamed_from`` tells the planner the column had another name in
    the previous version, so it is renamed instead of dropped and added.
    """

    name: Identifier
    type: PortableType
    nullable: bool = True
    default: str | bool | int | float | None = None
    primary_key: bool = False
    unique: bool = False
    index: bool = False
    description: str = ""
    renamed_from: Identifier | None = None

    @model_validator(mode="before")
    @classmethod
    def _primary_key_is_not_null(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("primary_key") and "nullable" not in data:
            return {**data, "nullable": False}
        return data

    @model_validator(mode="after")
    def _check_primary_key(self) -> SchemaColumn:
        if self.primary_key and self.nullable:
            raise ValueError(f"primary key column {self.name!r} cannot be nullable")
        return self

    @property
    def column_type(self) -> ColumnType:
        """The parsed type."""
        return ColumnType.parse(self.type)

    @property
    def required(self) -> bool:
        """Whether a row must give a value: NOT NULL and no default."""
        return not self.nullable and self.default is None


class SchemaReference(_Model):
    """A column that refers to a column of another table, in this service or another one.

    References inside one service become foreign keys. References to another service's table
    cannot be enforced across databases: the registry checks them, documents them, and orders
    migrations by them.
    """

    column: Identifier
    references: Annotated[str, Field(pattern=r"^[A-Za-z_]\w*\.[A-Za-z_]\w*\.[A-Za-z_]\w*$")]
    on_delete: Annotated[ReferentialAction, BeforeValidator(_action)] = "NO ACTION"
    on_update: Annotated[ReferentialAction, BeforeValidator(_action)] = "NO ACTION"

    @property
    def target_service(self) -> str:
        """The referenced service."""
        return self.references.split(".")[0]

    @property
    def target_table(self) -> str:
        """The referenced table."""
        return self.references.split(".")[1]

    @property
    def target_column(self) -> str:
        """The referenced column."""
        return self.references.split(".")[2]

    @property
    def target_key(self) -> str:
        """``service.table`` of the referenced table."""
        return self.references.rsplit(".", 1)[0]


class SchemaIndex(_Model):
    """A named index over one or more columns."""

    name: Identifier
    columns: Annotated[tuple[Identifier, ...], Field(min_length=1)]
    unique: bool = False


class SchemaDefinition(_Model):
    """One version of one table of one service.

    Example:
        >>> SchemaDefinition(
        ...     service="users",
        ...     table="users",
        ...     version="1.0.0",
        ...     columns=[SchemaColumn(name="id", type="uuid", primary_key=True)],
        ... ).key
        'users.users'
    """

    service: Identifier
    table: Identifier
    version: Version
    owner: str = ""
    description: str = ""
    columns: Annotated[tuple[SchemaColumn, ...], Field(min_length=1)]
    references: tuple[SchemaReference, ...] = ()
    indexes: tuple[SchemaIndex, ...] = ()
    renamed_from: Identifier | None = None

    _source_file: str | None = PrivateAttr(default=None)
    _lines: dict[str, int] = PrivateAttr(default_factory=dict)

    def __eq__(self, other: object) -> bool:
        # Equal content is equal, whichever file (private source attributes) it came from.
        if isinstance(other, SchemaDefinition):
            return self.model_dump() == other.model_dump()
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.key, self.version))

    @property
    def key(self) -> str:
        """``service.table``: the registry's key for this table."""
        return f"{self.service}.{self.table}"

    @property
    def version_tuple(self) -> tuple[int, int, int]:
        """The version as ``(major, minor, patch)``, for ordering."""
        return parse_version(self.version)

    @property
    def source_file(self) -> str | None:
        """The YAML file this definition was loaded from, if any."""
        return self._source_file

    def column(self, name: str) -> SchemaColumn | None:
        """Return the column called ``name``, or None."""
        return next((column for column in self.columns if column.name == name), None)

    def line_of(self, path: str = "") -> int | None:
        """Return the 1-based line of ``path`` in the source file (``columns.email.type``).

        Falls back to the nearest enclosing entry that has a line, then to the definition's
        first line; None for a definition not loaded from a file.
        """
        while True:
            if path in self._lines:
                return self._lines[path]
            if not path:
                return None
            path = path.rpartition(".")[0]

    def with_source(self, file: str | None, lines: dict[str, int]) -> SchemaDefinition:
        """Return a copy of this definition that remembers the file and lines it was read from."""
        copy = self.model_copy()
        copy._source_file = file
        copy._lines = dict(lines)
        return copy

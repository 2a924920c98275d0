"""Page requests and page answers: offset pages (``PageParams``) and cursor pages."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from enum import StrEnum
from typing import Any, ClassVar, Generic, NamedTuple, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator
from pydantic_core import PydanticCustomError

from aegis.core.utils.pagination import offset_for, total_pages

T = TypeVar("T")

_SORT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_MAX_SORT_FIELDS = 8


class SortDirection(StrEnum):
    """Ascending or descending order."""

    ASC = "asc"
    DESC = "desc"


class SortField(NamedTuple):
    """One sort key: a field name and its direction. ``str()`` gives ``-name`` for descending."""

    field: str
    direction: SortDirection = SortDirection.ASC

    def __str__(self) -> str:
        return f"-{self.field}" if self.direction is SortDirection.DESC else self.field


def _parse_sort_terms(text: str) -> list[tuple[str, SortDirection]]:
    terms = []
    for raw in text.split(","):
        term = raw.strip()
        if not term:
            continue  # "name," from a hand-written URL: an empty term carries no order
        if term[0] == "-":
            terms.append((term[1:].strip(), SortDirection.DESC))
        else:
            terms.append((term.removeprefix("+").strip(), SortDirection.ASC))
    return terms


class PageParams(BaseModel):
    """Offset pagination request: ``page`` (from 1), ``size`` and ``sort``.

    ``sort`` is text like ``-created_at,name`` (a leading ``-`` means descending, ``+`` or
    nothing ascending) or a list of such terms, parsed into :class:`SortField` pairs. Field names
    are identifiers (``[A-Za-z_][A-Za-z0-9_]*``, up to 64 characters), each at most once, at most
    8 of them. A ``size`` above ``max_size`` is **rejected**, not clamped: a client asking for
    1000 rows and silently getting 100 would think it saw everything. Subclass to change the
    limits or to allow only some sort fields::

        class UserPageParams(PageParams):
            max_size = 50
            sortable = frozenset({"created_at", "name"})

    Invalid values raise pydantic's ``ValidationError`` naming ``page``, ``size`` or ``sort``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_size: ClassVar[int] = 100
    """Largest ``size`` a client may ask for."""
    max_page: ClassVar[int] = 1_000_000
    """Largest ``page``: deeper offsets are slow in every database; use cursors there."""
    sortable: ClassVar[frozenset[str] | None] = None
    """Field names ``sort`` may use; ``None`` allows any well-formed name."""

    page: int = Field(default=1, ge=1)
    size: int = Field(default=20, ge=1)
    sort: tuple[SortField, ...] = ()

    @field_validator("page")
    @classmethod
    def _page_within_limit(cls, value: int) -> int:
        if value > cls.max_page:
            raise PydanticCustomError(
                "less_than_equal",
                "Input should be less than or equal to {le}; use cursor pagination to go deeper",
                {"le": cls.max_page},
            )
        return value

    @field_validator("size")
    @classmethod
    def _size_within_limit(cls, value: int) -> int:
        if value > cls.max_size:
            raise PydanticCustomError(
                "less_than_equal",
                "Input should be less than or equal to {le}",
                {"le": cls.max_size},
            )
        return value

    @field_validator("sort", mode="before")
    @classmethod
    def _parse_sort(cls, value: Any) -> Any:
        if value is None:
            return ()
        if isinstance(value, str):
            return _parse_sort_terms(value)
        if isinstance(value, Sequence) and all(isinstance(item, str) for item in value):
            return _parse_sort_terms(",".join(value))
        return value

    @field_validator("sort")
    @classmethod
    def _check_sort_fields(cls, value: tuple[SortField, ...]) -> tuple[SortField, ...]:
        if len(value) > _MAX_SORT_FIELDS:
            raise PydanticCustomError(
                "too_long", "sort by at most {max} fields", {"max": _MAX_SORT_FIELDS}
            )
        seen: set[str] = set()
        for sort_field in value:
            name = sort_field.field
            if _SORT_NAME.fullmatch(name) is None:
                raise PydanticCustomError(
                    "sort_field_format",
                    "sort field '{field}' is not a name: use letters, digits and '_', "
                    "optionally prefixed by '-' for descending (e.g. '-created_at,name')",
                    {"field": name[:64]},
                )
            if cls.sortable is not None and name not in cls.sortable:
                raise PydanticCustomError(
                    "sort_field_not_allowed",
                    "cannot sort by '{field}'; sortable fields: {allowed}",
                    {"field": name, "allowed": ", ".join(sorted(cls.sortable))},
                )
            if name in seen:
                raise PydanticCustomError(
                    "sort_field_repeated", "sort field '{field}' is given twice", {"field": name}
                )
            seen.add(name)
        return value

    @field_serializer("sort")
    def _sort_as_text(self, value: tuple[SortField, ...]) -> str | None:
        return ",".join(str(sort_field) for sort_field in value) or None

    @property
    def offset(self) -> int:
        """Rows to skip before this page: ``(page - 1) * size``."""
        return offset_for(self.page, self.size)

    @property
    def limit(self) -> int:
        """Rows in one page (the ``size``), for ``LIMIT``."""
        return self.size


class PaginatedResponse(BaseModel, Generic[T]):
    """One page of results with the counts a client needs to page on.

    Example:
        >>> PaginatedResponse[UserOut].create(rows, total=42, params=PageParams(page=2, size=20))
    """

    items: list[T]
    total: int = Field(ge=0)
    page: int = Field(ge=1)
    size: int = Field(ge=1)
    pages: int = Field(ge=0)
    has_next: bool

    @classmethod
    def create(cls, items: Iterable[T | object], total: int, params: PageParams) -> Self:
        """Build a page from its ``items``, the ``total`` row count and the request's ``params``.

        Items are validated with ``from_attributes``, so ORM rows (any objects with the
        attributes of ``T``) become ``T`` models directly: parametrize the class,
        ``PaginatedResponse[UserOut].create(rows, ...)``.

        Raises:
            pydantic.ValidationError: ``total`` is negative or an item is not a valid ``T``.
        """
        pages = total_pages(total, params.size) if total > 0 else 0  # < 0: refused below
        return cls.model_validate(
            {
                "items": list(items),
                "total": total,
                "page": params.page,
                "size": params.size,
                "pages": pages,
                "has_next": params.page < pages,
            },
            from_attributes=True,
        )


class CursorPage(BaseModel, Generic[T]):
    """One page of keyset (cursor) pagination: items and opaque cursors to the neighbours.

    A ``None`` cursor means there is no page in that direction. Make cursors with
    :func:`aegis.core.utils.pagination.encode_cursor` so clients cannot forge them.
    """

    items: list[T]
    next_cursor: str | None = None
    prev_cursor: str | None = None

    @property
    def has_next(self) -> bool:
        """Whether there is a next page."""
        return self.next_cursor is not None

"""What a repository needs of its model, worked out once: flags, and statements built ahead.

Building a lookup's SELECT, its WHERE and ORDER BY, and that statement's cache key costs more
CPU than SQLAlchemy's execution of the cached compiled form. A statement built once with bound
parameters keeps its cache key (SQLAlchemy memoizes it on the statement object), so a lookup by
id, a page without filters or a plain count only binds values.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Integer, Select, bindparam, func, select
from sqlalchemy.orm import DeclarativeBase, InstrumentedAttribute, Mapper

from aegis.core.errors import ConfigurationError
from aegis.db._mixins import SoftDeleteMixin, TimestampMixin, VersionMixin
from aegis.db._query import build_order, order_clauses, parse_sort
from aegis.db._session import CRITERIA_APPLIED, INCLUDE_DELETED, SOFT_DELETE_CRITERIA

LIMIT = "limit"
OFFSET = "offset"
"""Names of the page statements' bound parameters (an unstorable value's error names them)."""

_MAX_PAGE_STATEMENTS = 64
"""Page statements kept per model: the sort text comes from clients, so the cache is bounded."""

PageKey = tuple[str | None, frozenset[str] | None, bool, bool, bool]
"""Sort text, sortable fields, include_deleted, with a LIMIT, with an OFFSET."""


def scoped(statement: Select[Any], *, include_deleted: bool) -> Select[Any]:
    """``statement`` with soft-deleted rows left out (marked as done), or let in."""
    if include_deleted:
        return statement.execution_options(**{INCLUDE_DELETED: True})
    return statement.options(SOFT_DELETE_CRITERIA).execution_options(**{CRITERIA_APPLIED: True})


class ModelStatements:
    """One model's mapper facts and the statements its repositories reuse.

    Raises:
        ConfigurationError: the model has more than one primary key column.
    """

    def __init__(self, model: type[DeclarativeBase]) -> None:
        mapper: Mapper[Any] = model.__mapper__
        if len(mapper.primary_key) != 1:
            raise ConfigurationError(f"{model.__name__}: one primary key column is needed")
        self.model = model
        self.mapper = mapper
        self.pk_name = str(mapper.primary_key[0].key)
        """The primary key's attribute, also the name of :meth:`by_id`'s parameter."""
        self.pk: InstrumentedAttribute[Any] = getattr(model, self.pk_name)
        plain: type[Any] = model  # mixins are not DeclarativeBase subclasses
        self.soft = issubclass(plain, SoftDeleteMixin)
        self.versioned = issubclass(plain, VersionMixin)
        self.timestamped = issubclass(plain, TimestampMixin)
        self._by_id: dict[bool, Select[Any]] = {}
        self._counts: dict[bool, Select[Any]] = {}
        self._pages: dict[PageKey, Select[Any]] = {}

    def by_id(self, *, include_deleted: bool) -> Select[Any]:
        """``SELECT`` of the row whose primary key is the parameter named :attr:`pk_name`."""
        statement = self._by_id.get(include_deleted)
        if statement is None:
            lookup = select(self.model).where(self.pk == bindparam(self.pk_name))
            statement = self._by_id[include_deleted] = scoped(
                lookup, include_deleted=include_deleted
            )
        return statement

    def count(self, *, include_deleted: bool) -> Select[Any]:
        """The statement that counts every row of the model."""
        statement = self._counts.get(include_deleted)
        if statement is None:
            counting = select(func.count()).select_from(self.model)
            statement = self._counts[include_deleted] = scoped(
                counting, include_deleted=include_deleted
            )
        return statement

    def page(self, key: PageKey) -> Select[Any]:
        """Every row in ``key``'s order, with the :data:`LIMIT` / :data:`OFFSET` parameters.

        Raises:
            InvalidInputError: the sort names a field that is unknown or not sortable.
        """
        statement = self._pages.get(key)
        if statement is None:
            sort, sortable, include_deleted, limited, skips = key
            columns, complete = build_order(self.mapper, parse_sort(sort), sortable)
            statement = select(self.model).order_by(
                *order_clauses(columns, complete, reverse=False)
            )
            if skips:
                statement = statement.offset(bindparam(OFFSET, type_=Integer))
            if limited:
                statement = statement.limit(bindparam(LIMIT, type_=Integer))
            statement = scoped(statement, include_deleted=include_deleted)
            if len(self._pages) < _MAX_PAGE_STATEMENTS:
                self._pages[key] = statement
        return statement

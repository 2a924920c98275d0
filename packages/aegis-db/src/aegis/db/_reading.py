"""Reading rows: lookups, filters, stable sorting, offset pages and signed keyset pages."""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, SecretStr
from sqlalchemy import (
    ColumnElement,
    Select,
    exists,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, InstrumentedAttribute, Mapper
from sqlalchemy.sql.base import ExecutableOption

from aegis.core.errors import ConfigurationError, InvalidInputError, NotFoundError
from aegis.core.models import CursorPage, PageParams, PaginatedResponse, SortField
from aegis.db import _keyset
from aegis.db._errors import translating_errors
from aegis.db._query import (
    Filter,
    build_order,
    build_where,
    filters_from_kwargs,
    filters_from_object,
    order_clauses,
    parse_sort,
)
from aegis.db._session import INCLUDE_DELETED, AegisSession
from aegis.db._statements import LIMIT, OFFSET, ModelStatements

ModelT = TypeVar("ModelT", bound=DeclarativeBase)
SchemaT = TypeVar("SchemaT", bound=BaseModel)

FilterInput = BaseModel | Iterable[Filter] | None
SortInput = str | Sequence[SortField | str] | None


class ReadRepository(Generic[ModelT]):
    """The reading half of :class:`BaseRepository`: lookups, filters, sorting and pages."""

    model: type[ModelT]
    filterable: ClassVar[frozenset[str] | None] = None
    sortable: ClassVar[frozenset[str] | None] = None
    default_sort: ClassVar[str | None] = None
    """Sort used when none is given, e.g. ``"-created_at"`` (the primary key always ends it)."""
    max_page_size: ClassVar[int] = 100
    _model_statements: ClassVar[ModelStatements | None] = None

    def __init__(
        self, session: AsyncSession, *, cursor_secret: bytes | str | SecretStr | None = None
    ) -> None:
        if not isinstance(getattr(self, "model", None), type):
            raise ConfigurationError(
                f"{type(self).__name__} has no model: subclass BaseRepository[YourModel]"
            )
        if not isinstance(session.sync_session, AegisSession):
            raise ConfigurationError(
                "repositories need a session from DatabaseManager (AegisSession), which hides "
                "soft-deleted rows; this one is a plain SQLAlchemy session"
            )
        # Worked out once per repository class (and model), not per repository.
        statements: ModelStatements | None = type(self).__dict__.get("_model_statements")
        if statements is None or statements.model is not self.model:
            statements = ModelStatements(self.model)
            type(self)._model_statements = statements
        self.session = session
        self._statements = statements
        self._mapper: Mapper[Any] = statements.mapper
        self._pk: InstrumentedAttribute[Any] = statements.pk
        self._soft = statements.soft
        self._versioned = statements.versioned
        self._timestamped = statements.timestamped
        secret = (
            cursor_secret.get_secret_value()
            if isinstance(cursor_secret, SecretStr)
            else cursor_secret
        )
        self._cursor_secret = secret.encode() if isinstance(secret, str) else secret

    # -- reading -------------------------------------------------------------------------

    def _select(self, include_deleted: bool, options: Sequence[ExecutableOption]) -> Select[ModelT]:
        statement = select(self.model)
        if options:
            statement = statement.options(*options)
        if include_deleted:
            statement = statement.execution_options(**{INCLUDE_DELETED: True})
        return statement

    async def get_or_none(
        self,
        id: Any,
        *,
        include_deleted: bool = False,
        options: Sequence[ExecutableOption] = (),
    ) -> ModelT | None:
        """Return the row with primary key ``id``, or ``None``."""
        if options:
            statement = self._select(include_deleted, options).where(self._pk == id)
            parameters = None
        else:  # the statement built once for this model, with the id bound
            statement = self._statements.by_id(include_deleted=include_deleted)
            parameters = {self._statements.pk_name: id}
        with translating_errors():
            return (await self.session.scalars(statement, parameters)).one_or_none()

    async def get(
        self,
        id: Any,
        *,
        include_deleted: bool = False,
        options: Sequence[ExecutableOption] = (),
    ) -> ModelT:
        """Return the row with primary key ``id``.

        Raises:
            NotFoundError: there is none (or it is soft-deleted).
        """
        found = await self.get_or_none(id, include_deleted=include_deleted, options=options)
        if found is None:
            raise self._not_found(id)
        return found

    def _where(self, filters: FilterInput, kwargs: Mapping[str, Any]) -> ColumnElement[bool]:
        items = filters_from_object(filters) + filters_from_kwargs(kwargs)
        return build_where(self._mapper, items, self.filterable)

    async def list(
        self,
        *,
        filters: FilterInput = None,
        sort: SortInput = None,
        limit: int | None = None,
        offset: int = 0,
        include_deleted: bool = False,
        options: Sequence[ExecutableOption] = (),
        **where: Any,
    ) -> builtins.list[ModelT]:
        """Return rows matching ``filters`` and keyword filters, in a stable order.

        Keyword filters use ``field__operator=value`` (``age__ge=18``,
        ``team__name__icontains="core"``); see :class:`Filter` for the operators.

        Raises:
            InvalidInputError: an unknown or disallowed field, operator or sort field.
        """
        text = sort if sort is not None else self.default_sort
        if (
            (text is None or isinstance(text, str))
            and (limit is None or type(limit) is int)
            and type(offset) is int
        ):
            # The statement built once for this order, with LIMIT and OFFSET bound; filters
            # and options are added to a copy of it.
            sortable = self.sortable
            if sortable is not None and type(sortable) is not frozenset:
                sortable = frozenset(sortable)  # a set given for the frozenset (a cache key)
            key = (text, sortable, include_deleted, limit is not None, offset != 0)
            statement = self._statements.page(key)
            if filters is not None or where:
                statement = statement.where(self._where(filters, where))
            if options:
                statement = statement.options(*options)
            parameters = {LIMIT: limit, OFFSET: offset}
            with translating_errors():
                return builtins.list((await self.session.scalars(statement, parameters)).all())
        columns, complete = build_order(self._mapper, self._sort(sort), self.sortable)
        statement = (
            self._select(include_deleted, options)
            .where(self._where(filters, where))
            .order_by(*order_clauses(columns, complete, reverse=False))
            .offset(offset or None)
            .limit(limit)
        )
        with translating_errors():
            return builtins.list((await self.session.scalars(statement)).all())

    async def count(
        self, *, filters: FilterInput = None, include_deleted: bool = False, **where: Any
    ) -> int:
        """Count rows matching the filters (soft-deleted rows excluded unless asked)."""
        statement = self._statements.count(include_deleted=include_deleted)
        if filters is not None or where:
            statement = statement.where(self._where(filters, where))
        with translating_errors():
            return int((await self.session.execute(statement)).scalar_one())

    async def exists(
        self, *, filters: FilterInput = None, include_deleted: bool = False, **where: Any
    ) -> bool:
        """Whether any row matches the filters."""
        inner = select(self._pk).where(self._where(filters, where))
        statement = select(exists(inner))
        if include_deleted:
            statement = statement.execution_options(**{INCLUDE_DELETED: True})
        with translating_errors():
            return bool((await self.session.execute(statement)).scalar_one())

    def _sort(self, sort: SortInput) -> builtins.list[SortField]:
        return parse_sort(sort if sort is not None else self.default_sort)

    async def paginate(
        self,
        params: PageParams,
        schema: type[SchemaT],
        *,
        filters: FilterInput = None,
        include_deleted: bool = False,
        options: Sequence[ExecutableOption] = (),
        **where: Any,
    ) -> PaginatedResponse[SchemaT]:
        """Return one offset page with its total, items converted to ``schema``.

        The total comes from a separate ``COUNT(*)`` (much cheaper than ``COUNT(*) OVER()``,
        and right past the last page too), skipped when the page itself proves it: a page
        that is not full ends the listing. For deep listings use :meth:`paginate_keyset`.
        """
        rows = await self.list(
            filters=filters,
            sort=params.sort or None,
            limit=params.limit,
            offset=params.offset,
            include_deleted=include_deleted,
            options=options,
            **where,
        )
        if len(rows) < params.limit and (rows or params.offset == 0):
            total = params.offset + len(rows)
        else:
            total = await self.count(filters=filters, include_deleted=include_deleted, **where)
        return PaginatedResponse[schema].create(rows, total=total, params=params)  # type: ignore[valid-type]

    async def paginate_keyset(
        self,
        schema: type[SchemaT],
        *,
        size: int = 20,
        cursor: str | None = None,
        sort: SortInput = None,
        filters: FilterInput = None,
        options: Sequence[ExecutableOption] = (),
        **where: Any,
    ) -> CursorPage[SchemaT]:
        """Return one keyset page: ``size`` items after (or before) ``cursor``.

        Cursors are signed with the repository's ``cursor_secret`` and carry the sort order
        they were made for. Sort columns must be NOT NULL; the primary key always ends the
        order, so no row is skipped or repeated between pages.

        Raises:
            InvalidInputError: a changed, foreign or mismatched cursor (field ``cursor``), a
                bad ``size`` or a nullable / unknown sort field.
            ConfigurationError: the repository has no ``cursor_secret``.
        """
        if self._cursor_secret is None:
            raise ConfigurationError(
                f"{type(self).__name__} needs cursor_secret= for keyset pagination"
            )
        if not 1 <= size <= self.max_page_size:
            raise InvalidInputError(
                f"size must be between 1 and {self.max_page_size}", field="size", rule="range"
            )
        columns, complete = build_order(self._mapper, self._sort(sort), self.sortable)
        _keyset.check_not_nullable(columns)
        spec = f"{self.model.__tablename__}:" + ",".join(str(item) for item in complete)
        backward = False
        condition = self._where(filters, where)
        if cursor is not None:
            keys, backward = _keyset.decode_keys(cursor, columns, spec, self._cursor_secret)
            condition &= _keyset.after(columns, complete, keys, backward=backward)
        statement = (
            self._select(False, options)
            .where(condition)
            .order_by(*order_clauses(columns, complete, reverse=backward))
            .limit(size + 1)
        )
        with translating_errors():
            rows = builtins.list((await self.session.scalars(statement)).all())
        more = len(rows) > size
        rows = rows[:size]
        if backward:
            rows.reverse()
        has_next = more if not backward else True
        has_prev = cursor is not None and (more if backward else True)
        secret = self._cursor_secret
        return CursorPage[schema](  # type: ignore[valid-type]
            items=[schema.model_validate(row, from_attributes=True) for row in rows],
            next_cursor=_keyset.encode_keys(rows[-1], columns, spec, secret, backward=False)
            if rows and has_next
            else None,
            prev_cursor=_keyset.encode_keys(rows[0], columns, spec, secret, backward=True)
            if rows and has_prev
            else None,
        )

    def _not_found(self, id: Any) -> NotFoundError:
        name = self.model.__name__
        return NotFoundError(
            f"{name} {id} does not exist", details={"resource": name, "id": str(id)}
        )

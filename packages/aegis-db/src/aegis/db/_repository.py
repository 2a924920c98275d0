"""BaseRepository: typed CRUD over one model, with upsert, optimistic locking and soft delete."""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast, get_args, get_origin

from pydantic import BaseModel
from sqlalchemy import (
    ColumnElement,
    CursorResult,
    delete,
    insert,
    update,
)

from aegis.core.errors import ConfigurationError, InvalidInputError
from aegis.db._errors import ConcurrentUpdateError, translating_errors
from aegis.db._mixins import utcnow
from aegis.db._reading import ModelT, ReadRepository
from aegis.db._session import INCLUDE_DELETED

if TYPE_CHECKING:
    from sqlalchemy.dialects import postgresql, sqlite

_MANAGED_FIELDS = frozenset({"created_at", "updated_at", "deleted_at", "version"})


class BaseRepository(ReadRepository[ModelT]):
    """Data access for one declarative model, bound to one session.

    Subclass with the model as the type argument; class attributes restrict what clients may
    filter and sort by (``None``: every column)::

        class UserRepository(BaseRepository[User]):
            filterable = frozenset({"email", "status", "team.name"})
            sortable = frozenset({"created_at", "email"})


        async with db.transaction() as session:
            users = UserRepository(session, cursor_secret=settings.cursor_secret)
            user = await users.create({"email": "kim@example.com"})

    Database errors come out as aegis errors (``DuplicateError``, ``ForeignKeyError``,
    ``ConcurrentUpdateError`` ...). Models with :class:`SoftDeleteMixin` are soft-deleted and
    their deleted rows are invisible unless a method is called with ``include_deleted=True``.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for base in getattr(cls, "__orig_bases__", ()):
            if get_origin(base) is BaseRepository:
                (argument,) = get_args(base)
                if isinstance(argument, type):
                    cls.model = argument

    # -- writing -------------------------------------------------------------------------

    def _values(self, data: Mapping[str, Any] | BaseModel, *, partial: bool) -> dict[str, Any]:
        values = (
            data.model_dump(exclude_unset=partial) if isinstance(data, BaseModel) else dict(data)
        )
        columns = self._mapper.column_attrs
        settable = set(columns.keys()) | (
            set() if partial else set(self._mapper.relationships.keys())
        )
        for name in values:
            if name not in settable:
                raise InvalidInputError(
                    f"unknown field '{name}' for {self.model.__name__}",
                    field=name,
                    rule="unknown_field",
                )
            if name in _MANAGED_FIELDS or (partial and name == self._pk.key):
                raise InvalidInputError(
                    f"'{name}' is managed by the database and cannot be set",
                    field=name,
                    rule="read_only_field",
                )
        return values

    async def create(self, data: Mapping[str, Any] | BaseModel | ModelT) -> ModelT:
        """Insert one row and return it with database-set values (id, timestamps) loaded.

        Raises:
            DuplicateError, ForeignKeyError, InvalidInputError: a constraint was broken.
        """
        if isinstance(data, Mapping | BaseModel):
            row = self.model(**self._values(data, partial=False))
        else:
            row = data
        self.session.add(row)
        with translating_errors():
            await self.session.flush()
        return row

    async def create_many(
        self, items: Iterable[Mapping[str, Any] | BaseModel], *, returning: bool = True
    ) -> builtins.list[ModelT]:
        """Insert many rows with one multi-row ``INSERT ... RETURNING`` batch per 1000 rows.

        Skips the unit of work (no ORM events or ``@validates``); Python column defaults such
        as the UUIDv7 id still apply. With ``returning=False`` nothing is read back and the
        result is empty, which is faster still.
        """
        rows = [self._values(item, partial=False) for item in items]
        if not rows:
            return []
        if self._versioned:
            for row in rows:
                row["version"] = 1
        with translating_errors():
            if not returning:
                await self.session.execute(insert(self.model), rows)
                return []
            statement = insert(self.model).returning(self.model, sort_by_parameter_order=True)
            return builtins.list((await self.session.scalars(statement, rows)).all())

    async def update(
        self,
        id: Any,
        data: Mapping[str, Any] | BaseModel,
        *,
        expected_version: int | None = None,
    ) -> ModelT:
        """Change the given fields of one row in a single ``UPDATE ... RETURNING``.

        Only the keys present change: a mapping's keys, or a pydantic model's *set* fields
        (an explicit ``None`` clears a column, a field left out is untouched). Versioned
        models get ``version + 1``; with ``expected_version`` the update applies only to that
        version.

        Raises:
            NotFoundError: no such row.
            ConcurrentUpdateError: the row's version is not ``expected_version``.
            InvalidInputError: an unknown or database-managed field.
        """
        values = self._values(data, partial=True)
        condition = self._pk == id
        if self._versioned:
            if expected_version is not None:
                condition &= self.model.version == expected_version  # type: ignore[attr-defined]
        elif expected_version is not None:
            raise ConfigurationError(f"{self.model.__name__} has no version column")
        return await self._update_returning(id, condition, values, expected_version, False)

    async def _update_returning(
        self,
        id: Any,
        condition: ColumnElement[bool],
        values: dict[str, Any],
        expected_version: int | None,
        include_deleted: bool,
    ) -> ModelT:
        if self._timestamped:
            values["updated_at"] = utcnow()
        if self._versioned:
            values["version"] = self.model.version + 1  # type: ignore[attr-defined]
        statement = (
            update(self.model)
            .where(condition)
            .values(values)
            .returning(self.model)
            .execution_options(populate_existing=True, **{INCLUDE_DELETED: include_deleted})
        )
        with translating_errors():
            row = (await self.session.scalars(statement)).one_or_none()
        if row is not None:
            return row
        if expected_version is not None and await self.get_or_none(id) is not None:
            raise ConcurrentUpdateError(
                f"{self.model.__name__} {id} is no longer at version {expected_version}: "
                "another change came first; reload it and apply the change again",
                details={"id": str(id), "expected_version": expected_version},
            )
        raise self._not_found(id)

    async def upsert(
        self,
        data: Mapping[str, Any] | BaseModel,
        *,
        conflict_on: Sequence[str],
        update_fields: Sequence[str] | None = None,
    ) -> ModelT:
        """Insert, or update the row with the same ``conflict_on`` values, atomically.

        One ``INSERT ... ON CONFLICT (...) DO UPDATE`` (PostgreSQL and SQLite), never a
        select-then-write race. ``update_fields`` (default: every given field except the
        conflict columns) are overwritten on conflict.
        """
        values = self._values(data, partial=False)
        if self._versioned:
            values.setdefault("version", 1)
        # The dialect's own module, imported here rather than with aegis.db: creating the engine
        # has loaded it already, and the other dialect is never loaded at all.
        statement: postgresql.Insert | sqlite.Insert
        if self.session.get_bind().dialect.name == "postgresql":
            # lazy: only the dialect in use is loaded
            from sqlalchemy.dialects.postgresql import insert as postgresql_insert

            statement = postgresql_insert(self.model)
        else:
            # lazy: only the dialect in use is loaded
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            statement = sqlite_insert(self.model)
        statement = statement.values(values)
        names = (
            update_fields
            if update_fields is not None
            else [
                name
                for name in values
                if name not in conflict_on and name not in _MANAGED_FIELDS and name != self._pk.key
            ]
        )
        changes: dict[str, Any] = {name: statement.excluded[name] for name in names}
        table = self.model.__table__
        if self._versioned:
            changes["version"] = table.c.version + 1
        if self._timestamped:
            changes["updated_at"] = utcnow()
        upsert = statement.on_conflict_do_update(
            index_elements=list(conflict_on),
            index_where=table.c.deleted_at.is_(None) if self._soft else None,
            set_=changes,
        ).returning(self.model)
        with translating_errors():
            result = await self.session.scalars(
                upsert, execution_options={"populate_existing": True}
            )
            row: ModelT = result.one()
        return row

    async def delete(self, id: Any, *, hard: bool = False) -> None:
        """Delete one row: soft (sets ``deleted_at``) when the model has it, else for real.

        ``hard=True`` always runs a real ``DELETE``, which also removes a soft-deleted row.

        Raises:
            NotFoundError: no such row (a soft delete of a deleted row counts as missing).
        """
        if self._soft and not hard:
            await self._update_returning(id, self._pk == id, {"deleted_at": utcnow()}, None, False)
            return
        statement = (
            delete(self.model).where(self._pk == id).execution_options(**{INCLUDE_DELETED: True})
        )
        with translating_errors():
            result = cast("CursorResult[Any]", await self.session.execute(statement))
        if result.rowcount == 0:
            raise self._not_found(id)

    async def restore(self, id: Any) -> ModelT:
        """Undo a soft delete and return the row.

        Raises:
            NotFoundError: no soft-deleted row with this id.
            ConfigurationError: the model has no ``deleted_at``.
        """
        if not self._soft:
            raise ConfigurationError(f"{self.model.__name__} is not soft-deletable")
        deleted_at = self.model.deleted_at  # type: ignore[attr-defined]
        condition = (self._pk == id) & deleted_at.is_not(None)
        return await self._update_returning(id, condition, {"deleted_at": None}, None, True)

"""The session class aegis.db hands out, and the state of one unit of work."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from enum import StrEnum

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import ORMExecuteState, Session, with_loader_criteria

from aegis.db._errors import TransactionStateError
from aegis.db._mixins import SoftDeleteMixin

logger = logging.getLogger("aegis.db")

INCLUDE_DELETED = "include_deleted"
"""Execution option name: ``execution_options(include_deleted=True)`` sees soft-deleted rows."""

OnCommitCallback = Callable[[], Awaitable[object] | object]
"""A callable run after the outermost commit: plain or async, no arguments."""


class AegisSession(Session):
    """The ORM session behind every ``AsyncSession`` a :class:`DatabaseManager` opens.

    It adds one thing to SQLAlchemy's ``Session``: soft-deleted rows (models with
    :class:`SoftDeleteMixin`) are left out of every ORM SELECT, UPDATE and DELETE, including
    joins, aliases and the relationship loads those statements start, unless the statement
    carries ``execution_options(include_deleted=True)``.
    """


SOFT_DELETE_CRITERIA = with_loader_criteria(
    SoftDeleteMixin, lambda cls: cls.deleted_at.is_(None), include_aliases=True
)
"""The option that leaves soft-deleted rows out of a statement and the loads it starts.

Built once: the option is immutable and its lambda takes no outside values, so every
statement can share it (building it per statement was a measurable share of a lookup).
"""

CRITERIA_APPLIED = "aegis_soft_delete_applied"
"""Execution option of a statement that already carries :data:`SOFT_DELETE_CRITERIA`.

The repository's statements are built once with the option in place; this marker tells the
session not to add it a second time (which would copy the statement and its cache key)."""


@event.listens_for(AegisSession, "do_orm_execute")
def _exclude_soft_deleted(state: ORMExecuteState) -> None:
    # Relationship and column loads inherit the criteria from the statement that loaded the
    # parent (with_loader_criteria propagates), so only top-level statements are amended.
    options = state.execution_options
    if (
        options.get(CRITERIA_APPLIED, False)
        or options.get(INCLUDE_DELETED, False)
        or state.is_column_load
        or state.is_relationship_load
    ):
        return
    state.statement = state.statement.options(SOFT_DELETE_CRITERIA)


WROTE = "aegis_db_wrote"
"""``session.info`` key set once the session flushed or ran a statement that may write."""


@event.listens_for(AegisSession, "after_flush")
def _remember_flush(session: Session, flush_context: object) -> None:
    session.info[WROTE] = True


@event.listens_for(AegisSession, "do_orm_execute")
def _remember_write(state: ORMExecuteState) -> None:
    # INSERT, UPDATE, DELETE and text() (which may write) count; a SELECT does not, so a
    # request that only reads in a write session costs the replicas nothing.
    if not state.is_select:
        state.session.info[WROTE] = True


class Propagation(StrEnum):
    """What ``transaction()`` does when a transaction is already open in this task."""

    NESTED = "nested"
    """Open a SAVEPOINT: a failure inside rolls back only the inner block (the default)."""
    REQUIRED = "required"
    """Join the open transaction: a failure inside dooms the whole transaction."""
    REQUIRES_NEW = "requires_new"
    """Open an independent transaction on another connection, committed on its own."""


# Any manager's open unit of work in this task: retries must not restart part of a transaction.
in_transaction: ContextVar[bool] = ContextVar("aegis_db_in_transaction", default=False)


@dataclass
class UnitOfWork:
    """One outermost transaction: its session, the task that owns it, and pending callbacks."""

    session: AsyncSession
    owner: asyncio.Task[object] | None
    callbacks: list[list[OnCommitCallback]] = field(default_factory=lambda: [[]])
    rollback_only: bool = False

    def check_owner(self) -> None:
        """Refuse use from another task: one AsyncSession must never serve two tasks at once."""
        if self.owner is not None and asyncio.current_task() is not self.owner:
            raise TransactionStateError(
                "this transaction belongs to another task; an AsyncSession cannot be shared "
                "between tasks: open one per task with transaction(propagation='requires_new')"
            )


async def run_callbacks(callbacks: list[OnCommitCallback]) -> None:
    """Run on-commit callbacks in order; a failing one is logged and the rest still run."""
    for callback in callbacks:
        try:
            result = callback()
            if inspect.isawaitable(result):
                await result
        except Exception:
            # The commit already happened: raising would report a committed change as failed.
            logger.exception("on_commit callback %r failed", callback)

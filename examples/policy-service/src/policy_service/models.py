"""Tables, API schemas and the user events policy-service consumes (its own copy of them)."""

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Date, Index, Numeric, String, Uuid, false
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from aegis.core.models import Int64, SafeStr
from aegis.db import (
    BaseRepository,
    SoftDeleteMixin,
    TimestampMixin,
    UUIDPrimaryKeyMixin,
    VersionMixin,
)

Status = Literal["draft", "active", "lapsed", "cancelled"]


class Base(DeclarativeBase):
    """Declarative base of policy-service's tables."""


class Policy(UUIDPrimaryKeyMixin, TimestampMixin, SoftDeleteMixin, VersionMixin, Base):
    """An insurance policy held by one user: the table of examples/schemas/policies.yaml."""

    __tablename__ = "policies"
    __table_args__ = (Index("ix_policies_status_starts_on", "status", "starts_on"),)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    holder_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    # enum(draft, active, lapsed, cancelled) in the registry: a VARCHAR of the longest value
    status: Mapped[str] = mapped_column(String(9), server_default="draft")
    premium: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    starts_on: Mapped[date] = mapped_column(Date)


class KnownUser(Base):
    """The local projection of user-service's users, fed by its events (known_users.yaml)."""

    __tablename__ = "known_users"
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    email: Mapped[str] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(7))  # enum(admin, user, viewer, service)
    user_version: Mapped[int]
    deleted: Mapped[bool] = mapped_column(server_default=false())


class PolicyRepository(BaseRepository[Policy]):
    """Policies, with what clients may filter and sort by."""

    filterable = frozenset({"status", "holder_id", "number", "starts_on"})
    sortable = frozenset({"number", "starts_on", "created_at"})


class KnownUserRepository(BaseRepository[KnownUser]):
    """The user projection."""


class PolicyIn(BaseModel):
    """``POST /policies``; ``holder_id`` defaults to the caller."""

    number: SafeStr = Field(min_length=1, max_length=32)
    holder_id: uuid.UUID | None = None
    premium: Decimal = Field(gt=0, max_digits=12, decimal_places=2)
    starts_on: date
    status: Status = "draft"


class PolicyPatch(BaseModel):
    """``PATCH /policies/{id}``: the version read last guards against lost updates."""

    version: Int64
    status: Status | None = None
    premium: Decimal | None = Field(default=None, gt=0, max_digits=12, decimal_places=2)


class PolicyOut(BaseModel):
    """A policy as the API shows it."""

    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    number: str
    holder_id: uuid.UUID
    status: str
    premium: Decimal
    starts_on: date
    version: int
    created_at: datetime

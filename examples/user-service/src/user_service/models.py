"""Tables (SQLAlchemy, aegis-db mixins), API schemas and the events user-service publishes."""

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field
from sqlalchemy import Index, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from user_events import UserData

from aegis.core.models import Int64, SafeStr
from aegis.db import (
    BaseRepository,
    SoftDeleteMixin,
    TimestampMixin,
    UUIDPrimaryKeyMixin,
    VersionMixin,
)
from aegis.msg import Outbox

Role = Literal["admin", "user", "viewer", "service"]


class Base(DeclarativeBase):
    """Declarative base of user-service's tables (and its outbox)."""


outbox = Outbox(metadata=Base.metadata, source="user-service")
"""The transactional outbox: a table of user-service's (examples/schemas/users_outbox.yaml),
written in the transaction of the change."""


class User(UUIDPrimaryKeyMixin, TimestampMixin, SoftDeleteMixin, VersionMixin, Base):
    """An account that can sign in: the table of examples/schemas/users.yaml."""

    __tablename__ = "users"
    __table_args__ = (Index("ix_users_created_at", "created_at"),)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    # enum(admin, user, viewer, service) in the registry: a VARCHAR as long as its longest value
    role: Mapped[str] = mapped_column(String(7), server_default="user")
    password_hash: Mapped[str] = mapped_column(Text)


class UserRepository(BaseRepository[User]):
    """Users, with what clients may filter and sort by."""

    filterable = frozenset({"email", "name", "role", "created_at"})
    sortable = frozenset({"email", "name", "created_at"})


class UserIn(BaseModel):
    """``POST /users``: text without lone surrogates or NUL (SafeStr), refused with a 422."""

    email: EmailStr
    name: SafeStr = Field(min_length=1, max_length=200)
    password: SafeStr = Field(min_length=1, max_length=1024)


class UserPatch(BaseModel):
    """``PATCH /users/{id}``: the version read last guards against lost updates."""

    version: Int64
    name: SafeStr | None = Field(default=None, min_length=1, max_length=200)
    role: Role | None = None


class UserOut(BaseModel):
    """A user as the API shows it (never the password hash)."""

    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    email: str
    name: str
    role: str
    version: int
    created_at: datetime


class Login(BaseModel):
    """``POST /auth/token``."""

    email: SafeStr = Field(max_length=320)
    password: SafeStr


class Refresh(BaseModel):
    """``POST /auth/refresh``."""

    refresh_token: SafeStr


def user_data(user: User) -> UserData:
    """The event payload of ``user``."""
    return UserData(
        user_id=str(user.id), email=user.email, name=user.name, role=user.role, version=user.version
    )

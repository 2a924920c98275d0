"""The user events of the sample services (aegis-msg CloudEvents on the ``users`` topic)."""

from pydantic import BaseModel

from aegis.msg import Event


class UserData(BaseModel):
    """Payload of the user events: the user as it is after the change."""

    user_id: str
    email: str
    name: str
    role: str
    version: int


class UserCreated(Event[UserData]):
    """A user registered."""

    type = "user.created"
    topic = "users"
    key_field = "user_id"


class UserUpdated(Event[UserData]):
    """A user's name or role changed."""

    type = "user.updated"
    topic = "users"
    key_field = "user_id"


class UserDeleted(Event[UserData]):
    """A user was (soft-)deleted."""

    type = "user.deleted"
    topic = "users"
    key_field = "user_id"


__all__ = ["UserCreated", "UserData", "UserDeleted", "UserUpdated"]

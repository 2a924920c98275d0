"""aegis.msg: typed CloudEvents on Kafka with retries, dead letters, an outbox and idempotency.

Example:
    >>> from pydantic import BaseModel
    >>> from aegis.msg import Event, EventPublisher, EventSubscriber, InMemoryTransport
    >>> class UserCreatedData(BaseModel):
    ...     user_id: str
    >>> class UserCreated(Event[UserCreatedData]):
    ...     type = "aegis.user.created"
    ...     topic = "users"
    ...     key_field = "user_id"
    >>> transport = InMemoryTransport()
    >>> publisher = EventPublisher(transport, source="users")
    >>> subscriber = EventSubscriber(transport, group_id="policies")
"""

from typing import TYPE_CHECKING

from aegis.core.utils.lazy import lazy_getattr
from aegis.msg.__about__ import __version__
from aegis.msg._asyncapi import AsyncAPI
from aegis.msg._dlt import DeadLetter
from aegis.msg._dlt_client import DeadLetters, ReplayResult
from aegis.msg._dlt_selection import DeadLetterSelection
from aegis.msg._errors import (
    BatchFailedError,
    EventInProgressError,
    InvalidEventError,
    PublishError,
    UnsupportedVersionError,
)
from aegis.msg._event import SPEC_VERSION, Event, new_event_id
from aegis.msg._idempotency import (
    Claim,
    IdempotencyStore,
    RedisIdempotencyStore,
    idempotent,
)
from aegis.msg._kafka import KafkaSettings, KafkaTransport, make_transport
from aegis.msg._kafka_producer import KafkaProducer
from aegis.msg._memory import InMemoryTransport, StoredMessage
from aegis.msg._metrics import MsgMetrics
from aegis.msg._publisher import EventPublisher
from aegis.msg._registry import EventRegistry, Upcaster, default_registry, event_json_schema
from aegis.msg._retry import RetryPolicy
from aegis.msg._subscriber import BatchHandler, Concurrency, EventSubscriber, Handler
from aegis.msg._transport import BatchResult, DeliveryResult, Headers, OutgoingRecord, Transport
from aegis.msg._wire import EventCodec, WireMode

if TYPE_CHECKING:
    from aegis.msg._idempotency_sql import SqlIdempotencyStore
    from aegis.msg._outbox import Outbox, OutboxRelay, RelayStatus

# These need SQLAlchemy (the `outbox` extra): imported on first use, so `import aegis.msg` does not.
_NEEDS_SQLALCHEMY = {
    "Outbox": "aegis.msg._outbox",
    "OutboxRelay": "aegis.msg._outbox",
    "RelayStatus": "aegis.msg._outbox",
    "SqlIdempotencyStore": "aegis.msg._idempotency_sql",
}


__getattr__ = lazy_getattr(__name__, _NEEDS_SQLALCHEMY, extras={"sqlalchemy": "aegis-msg[outbox]"})


__all__ = [
    "SPEC_VERSION",
    "AsyncAPI",
    "BatchFailedError",
    "BatchHandler",
    "BatchResult",
    "Claim",
    "Concurrency",
    "DeadLetter",
    "DeadLetterSelection",
    "DeadLetters",
    "DeliveryResult",
    "Event",
    "EventCodec",
    "EventInProgressError",
    "EventPublisher",
    "EventRegistry",
    "EventSubscriber",
    "Handler",
    "Headers",
    "IdempotencyStore",
    "InMemoryTransport",
    "InvalidEventError",
    "KafkaProducer",
    "KafkaSettings",
    "KafkaTransport",
    "MsgMetrics",
    "Outbox",
    "OutboxRelay",
    "OutgoingRecord",
    "PublishError",
    "RedisIdempotencyStore",
    "RelayStatus",
    "ReplayResult",
    "RetryPolicy",
    "SqlIdempotencyStore",
    "StoredMessage",
    "Transport",
    "UnsupportedVersionError",
    "Upcaster",
    "WireMode",
    "__version__",
    "default_registry",
    "event_json_schema",
    "idempotent",
    "make_transport",
    "new_event_id",
]

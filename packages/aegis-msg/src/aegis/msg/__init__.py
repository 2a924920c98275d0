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
from aegis.msg._errors import (
    BatchFailedError,
    EventInProgressError,
    InvalidEventError,
    PublishError,
    UnsupportedVersionError,
)

if TYPE_CHECKING:
    from aegis.msg._asyncapi import AsyncAPI
    from aegis.msg._dlt import DeadLetter
    from aegis.msg._dlt_client import DeadLetters, ReplayResult
    from aegis.msg._dlt_selection import DeadLetterSelection
    from aegis.msg._event import SPEC_VERSION, Event, new_event_id
    from aegis.msg._idempotency import (
        Claim,
        IdempotencyStore,
        RedisIdempotencyStore,
        idempotent,
    )
    from aegis.msg._idempotency_sql import SqlIdempotencyStore
    from aegis.msg._kafka import KafkaSettings, KafkaTransport, make_transport
    from aegis.msg._kafka_producer import KafkaProducer
    from aegis.msg._memory import InMemoryTransport, StoredMessage
    from aegis.msg._metrics import MsgMetrics
    from aegis.msg._outbox import Outbox, OutboxRelay, RelayStatus
    from aegis.msg._publisher import EventPublisher
    from aegis.msg._registry import EventRegistry, Upcaster, default_registry, event_json_schema
    from aegis.msg._retry import RetryPolicy
    from aegis.msg._subscriber import BatchHandler, Concurrency, EventSubscriber, Handler
    from aegis.msg._transport import BatchResult, DeliveryResult, Headers, OutgoingRecord, Transport
    from aegis.msg._wire import EventCodec, WireMode

# Every name but the errors (which register their codes) is imported on first use (PEP 562),
# so that `import aegis.msg` costs almost nothing: the Kafka transport, the event models and
# the AsyncAPI document load with the first name that needs them, and the outbox and the SQL
# idempotency store need SQLAlchemy, the `outbox` extra (benchmarks/import_time.py).
_LAZY = {
    "AsyncAPI": "aegis.msg._asyncapi",
    "BatchHandler": "aegis.msg._subscriber",
    "BatchResult": "aegis.msg._transport",
    "Claim": "aegis.msg._idempotency",
    "Concurrency": "aegis.msg._subscriber",
    "DeadLetter": "aegis.msg._dlt",
    "DeadLetterSelection": "aegis.msg._dlt_selection",
    "DeadLetters": "aegis.msg._dlt_client",
    "DeliveryResult": "aegis.msg._transport",
    "Event": "aegis.msg._event",
    "EventCodec": "aegis.msg._wire",
    "EventPublisher": "aegis.msg._publisher",
    "EventRegistry": "aegis.msg._registry",
    "EventSubscriber": "aegis.msg._subscriber",
    "Handler": "aegis.msg._subscriber",
    "Headers": "aegis.msg._transport",
    "IdempotencyStore": "aegis.msg._idempotency",
    "InMemoryTransport": "aegis.msg._memory",
    "KafkaProducer": "aegis.msg._kafka_producer",
    "KafkaSettings": "aegis.msg._kafka",
    "KafkaTransport": "aegis.msg._kafka",
    "MsgMetrics": "aegis.msg._metrics",
    "Outbox": "aegis.msg._outbox",
    "OutboxRelay": "aegis.msg._outbox",
    "OutgoingRecord": "aegis.msg._transport",
    "RedisIdempotencyStore": "aegis.msg._idempotency",
    "RelayStatus": "aegis.msg._outbox",
    "ReplayResult": "aegis.msg._dlt_client",
    "RetryPolicy": "aegis.msg._retry",
    "SPEC_VERSION": "aegis.msg._event",
    "SqlIdempotencyStore": "aegis.msg._idempotency_sql",
    "StoredMessage": "aegis.msg._memory",
    "Transport": "aegis.msg._transport",
    "Upcaster": "aegis.msg._registry",
    "WireMode": "aegis.msg._wire",
    "default_registry": "aegis.msg._registry",
    "event_json_schema": "aegis.msg._registry",
    "idempotent": "aegis.msg._idempotency",
    "make_transport": "aegis.msg._kafka",
    "new_event_id": "aegis.msg._event",
}


__getattr__ = lazy_getattr(__name__, _LAZY, extras={"sqlalchemy": "aegis-msg[outbox]"})


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

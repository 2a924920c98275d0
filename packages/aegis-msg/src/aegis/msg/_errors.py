"""The errors aegis.msg raises, each an AegisError with a stable code."""

from __future__ import annotations

from typing import Any

from aegis.core.errors import AegisError, ExternalServiceError, register_error_code

register_error_code("MSG_PUBLISH_FAILED", 503, "Event could not be published")
register_error_code("MSG_INVALID_EVENT", 422, "Event could not be decoded")
register_error_code("MSG_UNSUPPORTED_VERSION", 422, "Event schema version not supported")
register_error_code("MSG_EVENT_IN_PROGRESS", 409, "Event is being handled elsewhere")
register_error_code("MSG_BATCH_EVENT_FAILED", 500, "An event of a batch failed")

CONSUMER_UNAVAILABLE = "MSG_CONSUMER_UNAVAILABLE"
"""The code of a subscriber's failing readiness check (an ``ExternalServiceError``, HTTP 503)."""
register_error_code(CONSUMER_UNAVAILABLE, 503, "Events cannot be consumed")


class PublishError(ExternalServiceError):
    """The broker did not accept an event: ``details`` name the topic, event id and Kafka error.

    ``retriable`` says whether sending the same event again may succeed (a broker outage, a
    timeout) or not (a message too large, an unknown topic with auto-creation off).
    """

    default_code = "MSG_PUBLISH_FAILED"

    def __init__(
        self, message: str, *, retriable: bool = False, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message, details=details)
        self.retriable = retriable


class InvalidEventError(AegisError):
    """A received message is not a valid event (a poison message); it goes to the dead letters.

    The message says what is wrong: a missing ``ce_type`` header, a body that is not JSON, a
    field that fails validation.
    """

    default_code = "MSG_INVALID_EVENT"


class UnsupportedVersionError(InvalidEventError):
    """An event carries a schema version this consumer cannot read (a newer major version).

    It goes to the dead letters with this reason instead of stopping the consumer.
    """

    default_code = "MSG_UNSUPPORTED_VERSION"


class EventInProgressError(AegisError):
    """Another consumer holds the idempotency claim on this event; it is retried later."""

    default_code = "MSG_EVENT_IN_PROGRESS"


class BatchFailedError(AegisError):
    """Raised by a batch handler: ``events[index]`` failed, and the events before it are done.

    Raise it ``from`` the error that event caused: that error is what retries and dead letters
    go by (a ``not_retryable`` one goes to the dead letters at once) and what a dead letter
    records. The failed event is retried alone; the events after it are handed to the handler
    again once it is done with, so each key stays in order.

    Example:
        >>> for index, event in enumerate(events):
        ...     try:
        ...         await save(event)
        ...     except Exception as exc:
        ...         raise BatchFailedError(index) from exc
    """

    default_code = "MSG_BATCH_EVENT_FAILED"

    def __init__(self, index: int, message: str | None = None) -> None:
        super().__init__(message or f"event {index} of the batch failed", details={"index": index})
        self.index = index

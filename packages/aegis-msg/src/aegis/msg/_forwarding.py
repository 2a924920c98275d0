"""Sending a message on that its handler gave up: to a retry topic, or to the dead letters.

Forwarding keeps trying (with backoff) until the broker takes the record, because the message's
offset may only be committed once it is forwarded; a stop or a revocation of its partition (the
lane's interrupt) cuts the wait short, and the message is then left for redelivery.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from aegis.msg._metrics import MsgMetrics
from aegis.msg._registry import EventRegistry
from aegis.msg._retry import forwarded_headers
from aegis.msg._transport import Headers, OutgoingRecord, ReceivedMessage, header_map

if TYPE_CHECKING:
    from aegis.msg._handling import HandlingContext

logger = logging.getLogger("aegis.msg")

_FORWARD_BACKOFF_MAX = 30.0


class Forwarder:
    """Forwards messages to retry and dead-letter topics, and counts the dead letters.

    Args:
        context: the subscriber's group, retry policy and transport.
        registry: the registered event types (dead-letter metrics name only those).
        metrics: where dead letters are counted.
    """

    def __init__(
        self, context: HandlingContext, registry: EventRegistry, metrics: MsgMetrics
    ) -> None:
        self._context = context
        self._registry = registry
        self._metrics = metrics

    async def dead_letter(
        self,
        message: ReceivedMessage,
        main: str,
        error: Exception,
        reason: str,
        attempts: int,
        *,
        interrupt: asyncio.Event,
    ) -> bool:
        """Send ``message`` to ``main``'s dead-letter topic; ``False`` if interrupted first."""
        headers = forwarded_headers(
            message, error, group_id=self._context.group_id, attempts=attempts
        )
        own = header_map(message)
        type_name = own.get("ce_type", b"unknown").decode(errors="replace")
        event_id = own.get("ce_id", b"?").decode(errors="replace")
        target = self._context.retry.dead_letter_topic(main)
        logger.error(
            "event %s (%s) from %s[%s]@%s goes to %s (%s): %s",
            event_id,
            type_name,
            message.topic(),
            message.partition(),
            message.offset(),
            target,
            reason,
            error,
            extra={"event_id": event_id, "event_type": type_name},
        )
        if not await self.forward(message, target, headers, interrupt):
            return False
        if reason in ("invalid", "unsupported_version") and type_name not in self._registry:
            type_name = "unknown"  # keep label values bounded: only registered types
        self._metrics.dead_lettered.labels(main, type_name, reason).inc()
        self._metrics.consumed.labels(main, type_name, "dead_lettered").inc()
        return True

    async def forward(
        self, message: ReceivedMessage, topic: str, headers: Headers, interrupt: asyncio.Event
    ) -> bool:
        """Send ``message`` to ``topic``, retrying until sent; ``False`` if interrupted first."""
        value = message.value()
        key = message.key()
        record = OutgoingRecord(
            topic,
            value.encode() if isinstance(value, str) else value or b"",
            key.encode() if isinstance(key, str) else key,
            headers,
        )
        delay = 0.5
        while True:
            (result,) = await self._context.transport.send_batch([record])
            if result.error is None:
                return True
            logger.error("forwarding a message to %s failed: %s", topic, result.error.message)
            if not await pause(interrupt, delay):
                return False
            delay = min(delay * 2, _FORWARD_BACKOFF_MAX)


async def pause(interrupt: asyncio.Event, seconds: float) -> bool:
    """Wait ``seconds`` unless ``interrupt`` is set (stop, revocation); ``False`` if it was."""
    if seconds <= 0:
        return not interrupt.is_set()
    try:
        await asyncio.wait_for(interrupt.wait(), seconds)
    except TimeoutError:
        return True
    return False

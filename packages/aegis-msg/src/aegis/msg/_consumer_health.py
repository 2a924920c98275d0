"""Whether a subscriber can consume: cut off from its broker or its group, since when, and why.

An outage runs from the first thing that cuts the subscriber off (all brokers down, its
partitions lost, fetches failing, the group not joined yet) until none is left. Its start and
end are logged at WARNING; the readiness check fails once it lasted longer than its bound.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Literal

from aegis.core.errors import ExternalServiceError
from aegis.msg._errors import CONSUMER_UNAVAILABLE

logger = logging.getLogger("aegis.msg")

Condition = Literal["broker", "group", "fetch"]
"""What cuts a subscriber off: its brokers, its consumer group, or failing fetches."""


class ConsumerHealth:
    """The outage state of one subscriber, fed by its consumer channel and rebalance hooks.

    Args:
        group_id: the consumer group, for log lines and details.
        on_restored: called (on the event loop) when an outage that was logged ends.
    """

    def __init__(self, group_id: str, on_restored: Callable[[], None]) -> None:
        self.group_id = group_id
        self._on_restored = on_restored
        self._active: dict[Condition, str] = {}
        self._since: float | None = None
        self._logged = False
        self.last_error: str | None = None
        """Why the subscriber was last cut off (kept after it recovered)."""

    def begin(self, condition: Condition, reason: str, *, quiet: bool = False) -> None:
        """``condition`` holds from now on, for ``reason``; ``quiet``: not worth a WARNING.

        Joining the group at start is quiet: that takes seconds every time, and only its
        lasting too long (the readiness check) is news.
        """
        if self._since is None:
            self._since = time.monotonic()
        self._active[condition] = reason
        if quiet:
            return
        self.last_error = reason
        self._logged = True
        logger.warning(
            "event subscriber of group %s cannot consume: %s",
            self.group_id,
            reason,
            extra={"consumer_group": self.group_id},
        )

    def end(self, condition: Condition) -> None:
        """``condition`` no longer holds; the outage ends when nothing else does."""
        if self._active.pop(condition, None) is None or self._active or self._since is None:
            return
        lasted = time.monotonic() - self._since
        self._since = None
        if self._logged:
            self._logged = False
            logger.warning(
                "event subscriber of group %s consumes again after %.1f s",
                self.group_id,
                lasted,
                extra={"consumer_group": self.group_id},
            )
            self._on_restored()

    @property
    def unavailable_for(self) -> float | None:
        """Seconds since the subscriber was cut off; ``None`` while it can consume."""
        return None if self._since is None else time.monotonic() - self._since

    def check(self, *, running: bool, max_outage: float, topics: list[str]) -> dict[str, object]:
        """Details while healthy; raise when not running or cut off for over ``max_outage`` s.

        Raises:
            ExternalServiceError: code ``MSG_CONSUMER_UNAVAILABLE`` (HTTP 503).
        """
        unavailable_for = self.unavailable_for
        details: dict[str, object] = {
            "group": self.group_id,
            "topics": topics,
            "unavailable_for": None if unavailable_for is None else round(unavailable_for, 1),
            "last_error": self.last_error,
        }
        if not running:
            raise ExternalServiceError(
                f"the event subscriber of group {self.group_id} is not running",
                code=CONSUMER_UNAVAILABLE,
                details=details,
            )
        if unavailable_for is not None and unavailable_for > max_outage:
            reasons = "; ".join(self._active.values()) or "unknown"
            raise ExternalServiceError(
                f"the event subscriber of group {self.group_id} has not been able to consume "
                f"for {unavailable_for:.0f} s (more than {max_outage:g} s): {reasons}",
                code=CONSUMER_UNAVAILABLE,
                details=details,
            )
        return details

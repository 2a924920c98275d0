"""A circuit breaker for the cache's connection to Redis, and a warning that is logged sparingly.

While Redis is down every call would otherwise wait for a connect timeout and log an error; the
breaker turns that into an immediate "skip the cache" after a few failures and lets one probe
call through every ``reset_timeout`` seconds until Redis answers again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Literal

BreakerState = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    """Closed (calls go through) → open after ``threshold`` consecutive failures → half-open.

    Half-open lets exactly one call through as a probe: its success closes the breaker, its
    failure opens it for another ``reset_timeout``.
    """

    def __init__(
        self,
        threshold: int,
        reset_timeout: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threshold = threshold
        self.reset_timeout = reset_timeout
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False

    @property
    def state(self) -> BreakerState:
        """``closed``, ``open`` or ``half_open`` (a probe may go, or is going, through)."""
        if self._opened_at is None:
            return "closed"
        if self._probing or self._clock() - self._opened_at >= self.reset_timeout:
            return "half_open"
        return "open"

    def allow(self) -> bool:
        """Whether a call may go to Redis now; in half-open, True for the single probe only."""
        if self._opened_at is None:
            return True
        if self._probing or self._clock() - self._opened_at < self.reset_timeout:
            return False
        self._probing = True
        return True

    def success(self) -> bool:
        """Record a call that reached Redis: the breaker closes. True when it was not closed."""
        self._failures = 0
        if self._opened_at is None:
            return False
        self._opened_at = None
        self._probing = False
        return True

    def failure(self) -> bool:
        """Record a failed call; return True when this failure opened the breaker."""
        self._failures += 1
        if self._probing or (self._opened_at is None and self._failures >= self.threshold):
            self._opened_at = self._clock()
            self._probing = False
            return True
        return False


class ThrottledWarning:
    """Log a warning at most once per ``interval`` seconds, counting the ones held back."""

    def __init__(
        self,
        logger: logging.Logger,
        interval: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._interval = interval
        self._clock = clock
        self._last: float | None = None
        self._suppressed = 0

    def warn(self, message: str, *args: object) -> None:
        """Log ``message % args`` unless one was logged less than ``interval`` seconds ago."""
        now = self._clock()
        if self._last is not None and now - self._last < self._interval:
            self._suppressed += 1
            return
        suppressed, self._suppressed, self._last = self._suppressed, 0, now
        self._logger.warning(message + " (%d similar warnings suppressed)", *args, suppressed)

"""Failing open: a backend call that fails, or that the circuit breaker skips, answers a fallback.

Each such call is counted (``aegis_cache_errors_total``) and logged sparingly; the breaker's
state is the ``aegis_cache_circuit_open`` gauge.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from prometheus_client import Gauge
from redis.exceptions import RedisClusterException, RedisError

from aegis.cache._breaker import CircuitBreaker, ThrottledWarning
from aegis.cache._metrics import Labels

T = TypeVar("T")

# What "Redis is down or slow" looks like from redis-py: refused or reset connections, socket
# timeouts, a pool that stayed exhausted for the timeout. A cluster client whose topology
# refresh reaches no node, or finds slots no primary serves (mid-failover), raises
# RedisClusterException, which is not a RedisError.
FAILURES: tuple[type[BaseException], ...] = (
    RedisError,
    RedisClusterException,
    OSError,
    TimeoutError,
)


class FailOpen:
    """The fail-open policy of one cache: its circuit breaker, warnings and error counts.

    Args:
        breaker: decides when the backend is skipped; replaceable (``fail_open.breaker = ...``).
        labels: the metric children of calls that name no labels of their own.
        circuit_gauge: the ``aegis_cache_circuit_open`` child of the cache's namespace.
        logger: where the warnings go.
        warning_interval: at most one "failed, serving without cache" warning per interval.
    """

    def __init__(
        self,
        breaker: CircuitBreaker,
        labels: Labels,
        circuit_gauge: Gauge,
        logger: logging.Logger,
        warning_interval: float,
    ) -> None:
        self.breaker = breaker
        self.labels = labels
        self.logger = logger
        self.errors = 0
        self._circuit_gauge = circuit_gauge
        self._circuit_gauge.set(0)
        self._warning = ThrottledWarning(logger, warning_interval)

    @property
    def closed(self) -> bool:
        """Whether the breaker is closed (it is not skipping nor probing the backend)."""
        return self.breaker.state == "closed"

    def failed(self, operation: str, exc: BaseException | None, labels: Labels) -> None:
        """Record a failed (``exc``) or skipped (None: circuit open) backend call."""
        self.errors += 1
        labels.error(operation)
        if exc is None:
            return
        if self.breaker.failure():
            self._circuit_gauge.set(1)
            self.logger.warning(
                "cache: Redis failed %d times in a row; skipping it for %.1fs (%s: %s)",
                self.breaker.threshold,
                self.breaker.reset_timeout,
                type(exc).__name__,
                exc,
            )
        else:
            self._warning.warn(
                "cache: %s failed, serving without cache (%s: %s)",
                operation,
                type(exc).__name__,
                exc,
            )

    def succeeded(self) -> None:
        """Record a backend call that worked (closes the breaker after an outage)."""
        if self.breaker.success():
            self._circuit_gauge.set(0)
            self.logger.warning("cache: Redis answers again; cache re-enabled")

    async def attempt(
        self,
        operation: str,
        call: Callable[[], Awaitable[T]],
        fallback: T,
        labels: Labels | None = None,
    ) -> T:
        """Run a backend ``call``; on failure or an open circuit record it, return ``fallback``."""
        labels = labels or self.labels
        if not self.breaker.allow():
            self.failed(operation, None, labels)
            return fallback
        start = time.perf_counter()
        try:
            result = await call()
        except FAILURES as exc:
            self.failed(operation, exc, labels)
            return fallback
        self.succeeded()
        labels.observe(operation, time.perf_counter() - start)
        return result

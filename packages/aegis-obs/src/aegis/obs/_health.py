"""Health checks: named async checks with timeouts and criticality, run concurrently, cached.

A check is an async callable that returns (optionally a mapping of details) when the dependency
is fine and raises when it is not. The registry never lets a check break the report: one that
raises or exceeds its timeout is reported DOWN with its error and how long it ran.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from aegis.core.errors import AegisError, ConfigurationError, register_error_code
from aegis.core.utils.masking import mask_sensitive

_logger = logging.getLogger("aegis.obs.health")

register_error_code("HEALTH_CHECK_FAILED", 503, "Health check failed")

HealthCheckFunction = Callable[[], Awaitable[Mapping[str, Any] | bool | None]]
"""An async callable that returns (details or ``None``) when healthy and raises when not.

A check that answers ``False`` is DOWN and one that answers ``True`` is UP, so a probe such as
``cache.ping`` (which answers ``False`` instead of raising) cannot pass while its server is down.
"""

HEALTH_JSON: Final = "application/health+json"
"""The media type of the IETF health-check response format (draft-inadarei-api-health-check)."""


class HealthCheckError(AegisError):
    """A health check found its dependency unusable (code ``HEALTH_CHECK_FAILED``, HTTP 503).

    Raise it from your own check to report DOWN with a message; any exception does the same.
    """

    default_code = "HEALTH_CHECK_FAILED"


class HealthStatus(enum.StrEnum):
    """The health of one check or of the whole service."""

    UP = "UP"
    """Everything checked works."""
    DEGRADED = "DEGRADED"
    """Only non-critical checks fail: the service still serves (HTTP 200)."""
    DOWN = "DOWN"
    """A critical check fails: the service cannot serve (HTTP 503)."""

    @property
    def health_json(self) -> str:
        """The draft's status word: ``pass``, ``warn`` or ``fail``."""
        return _DRAFT_STATUS[self]


_DRAFT_STATUS: Final = {
    HealthStatus.UP: "pass",
    HealthStatus.DEGRADED: "warn",
    HealthStatus.DOWN: "fail",
}


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The outcome of one run of one check."""

    name: str
    """The check's name."""
    status: HealthStatus
    """``UP`` or ``DOWN``."""
    critical: bool
    """Whether a failure makes the service DOWN (else DEGRADED)."""
    duration_seconds: float
    """How long the check ran (up to its timeout)."""
    checked_at: datetime
    """When the check started (UTC)."""
    details: Mapping[str, Any] = field(default_factory=dict)
    """What the check returned."""
    error: str | None = None
    """Why the check failed, with secrets masked."""

    def to_health_json(self) -> dict[str, Any]:
        """Render as one entry of the draft's ``checks`` member."""
        entry: dict[str, Any] = {
            "componentId": self.name,
            "status": self.status.health_json,
            "time": self.checked_at.isoformat().replace("+00:00", "Z"),
            "observedValue": round(self.duration_seconds * 1000, 3),
            "observedUnit": "ms",
            "critical": self.critical,
        }
        if self.error is not None:
            entry["output"] = self.error
        if self.details:
            entry["details"] = dict(self.details)
        return entry


@dataclass(frozen=True, slots=True)
class HealthReport:
    """The aggregated outcome of a set of checks."""

    status: HealthStatus
    """DOWN if a critical check failed, DEGRADED if only non-critical ones did, else UP."""
    checks: tuple[CheckResult, ...]
    """Each check's result, in the order they were added."""

    @property
    def http_status(self) -> int:
        """503 when DOWN, else 200 (a DEGRADED service still serves)."""
        return 503 if self.status is HealthStatus.DOWN else 200

    def to_health_json(
        self, *, service_id: str | None = None, version: str | None = None
    ) -> dict[str, Any]:
        """Render as an ``application/health+json`` document.

        Each check is keyed ``"<name>:responseTime"`` (the draft's component:measurement).
        """
        document: dict[str, Any] = {"status": self.status.health_json}
        if service_id is not None:
            document["serviceId"] = service_id
        if version is not None:
            document["version"] = version
        document["checks"] = {
            f"{result.name}:responseTime": [result.to_health_json()] for result in self.checks
        }
        return document


def aggregate(results: tuple[CheckResult, ...]) -> HealthStatus:
    """Combine check results: any critical DOWN is DOWN, any other DOWN is DEGRADED, else UP."""
    status = HealthStatus.UP
    for result in results:
        if result.status is HealthStatus.DOWN:
            if result.critical:
                return HealthStatus.DOWN
            status = HealthStatus.DEGRADED
    return status


@dataclass(slots=True)
class _Check:
    name: str
    function: HealthCheckFunction
    timeout: float
    critical: bool
    result: CheckResult | None = None
    fresh_until: float = 0.0
    running: asyncio.Task[CheckResult] | None = None


class HealthRegistry:
    """Named health checks, run concurrently, each result cached for ``cache_seconds``.

    Caching bounds how often a dependency is checked, however many probes arrive: within the
    interval every caller gets the stored result, and callers that arrive while a check runs
    share that one run.

    Args:
        cache_seconds: How long a result is reused; ``0`` runs checks on every call (still
            sharing a run in progress).
        default_timeout: The timeout of checks added without one, in seconds.

    Example:
        >>> health = HealthRegistry()
        >>> health.add("postgres", sqlalchemy_check(engine))
        >>> health.add("search", http_check("http://search:9200/"), critical=False)
        >>> report = await health.run()
    """

    def __init__(self, *, cache_seconds: float = 1.0, default_timeout: float = 2.0) -> None:
        if cache_seconds < 0 or default_timeout <= 0:
            raise ConfigurationError(
                "HealthRegistry needs cache_seconds >= 0 and default_timeout > 0, got "
                f"{cache_seconds} and {default_timeout}"
            )
        self.cache_seconds = cache_seconds
        self.default_timeout = default_timeout
        self._checks: dict[str, _Check] = {}

    @property
    def names(self) -> tuple[str, ...]:
        """The names of the checks, in the order they were added."""
        return tuple(self._checks)

    def add(
        self,
        name: str,
        check: HealthCheckFunction,
        *,
        timeout: float | None = None,
        critical: bool = True,
    ) -> None:
        """Add a check.

        Args:
            name: A unique name (``postgres``, ``redis``, ``kafka``...).
            check: The async callable.
            timeout: Seconds before the check counts as DOWN; ``default_timeout`` when
                ``None``.
            critical: Whether its failure makes the service DOWN and not ready; a
                non-critical failure only degrades it.

        Raises:
            ConfigurationError: The name is taken or empty, or the timeout is not positive.
        """
        if not name or name in self._checks:
            raise ConfigurationError(f"health check name {name!r} is empty or already added")
        timeout = self.default_timeout if timeout is None else timeout
        if timeout <= 0:
            raise ConfigurationError(f"health check {name!r}: timeout must be > 0, got {timeout}")
        self._checks[name] = _Check(name, check, timeout, critical)

    async def run(self, *, critical_only: bool = False) -> HealthReport:
        """Run the checks (all, or only the critical ones) concurrently and aggregate them."""
        checks = [c for c in self._checks.values() if c.critical or not critical_only]
        results = tuple(await asyncio.gather(*(self._result(check) for check in checks)))
        return HealthReport(aggregate(results), results)

    async def _result(self, check: _Check) -> CheckResult:
        if check.result is not None and time.monotonic() < check.fresh_until:
            return check.result
        if check.running is None:
            check.running = asyncio.create_task(self._execute(check))
            check.running.add_done_callback(lambda task: self._store(check, task))
        # Shielded: a probe that disconnects must not cancel the run the others wait for.
        return await asyncio.shield(check.running)

    def _store(self, check: _Check, task: asyncio.Task[CheckResult]) -> None:
        check.running = None
        if not task.cancelled():
            check.result = task.result()
            check.fresh_until = time.monotonic() + self.cache_seconds

    async def _execute(self, check: _Check) -> CheckResult:
        checked_at = datetime.now(UTC)
        started = time.perf_counter()
        try:
            async with asyncio.timeout(check.timeout) as deadline:
                details = await check.function()
        except Exception as exc:  # a check may fail in any way; the report must not
            if isinstance(exc, TimeoutError) and deadline.expired():
                error = f"timed out after {check.timeout:g} s"
            else:
                error = mask_sensitive(f"{type(exc).__name__}: {exc}")
            duration = time.perf_counter() - started
            _logger.warning("health check %s is DOWN after %.3f s: %s", check.name, duration, error)
            return CheckResult(
                check.name, HealthStatus.DOWN, check.critical, duration, checked_at, error=error
            )
        duration = time.perf_counter() - started
        if details is False:
            _logger.warning("health check %s is DOWN: it answered False", check.name)
            return CheckResult(
                check.name,
                HealthStatus.DOWN,
                check.critical,
                duration,
                checked_at,
                error="the check answered False",
            )
        return CheckResult(
            check.name,
            HealthStatus.UP,
            check.critical,
            duration,
            checked_at,
            details=dict(details) if isinstance(details, Mapping) else {},
        )


__all__ = [
    "HEALTH_JSON",
    "CheckResult",
    "HealthCheckError",
    "HealthCheckFunction",
    "HealthRegistry",
    "HealthReport",
    "HealthStatus",
    "aggregate",
]

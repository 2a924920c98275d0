"""Prometheus metrics of the cache and its in-process counts.

Label sets are bounded: namespace, layer, operation.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from aegis.core.utils.weak import OncePerObject

# From a loopback round trip up to past the default timeout (0.25 s): the slow tail matters too.
_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


@dataclass(frozen=True)
class CacheMetrics:
    """The metric families one registry holds for every cache in the process."""

    hits: Counter
    misses: Counter
    errors: Counter
    duration: Histogram
    circuit_open: Gauge


@dataclass(frozen=True)
class CacheStats:
    """Counts of one cache since it was created (this process only).

    Attributes:
        hits: reads that found a value (near cache included).
        near_hits: the part of ``hits`` answered in process by the near cache.
        misses: reads that found nothing, including reads skipped because Redis was down.
        errors: operations that failed or were skipped because Redis was down or slow.
    """

    hits: int
    near_hits: int
    misses: int
    errors: int

    @property
    def hit_ratio(self) -> float:
        """``hits / (hits + misses)``; 0.0 before the first read."""
        reads = self.hits + self.misses
        return self.hits / reads if reads else 0.0


class Labels:
    """The metric children of one namespace label, bound once (the hit path skips labels())."""

    def __init__(self, metrics: CacheMetrics, namespace: str) -> None:
        self.namespace = namespace
        self.hit_remote = metrics.hits.labels(namespace, "remote")
        self.hit_near = metrics.hits.labels(namespace, "near")
        self.miss = metrics.misses.labels(namespace)
        self.get_seconds = metrics.duration.labels(namespace, "get")
        self._metrics = metrics

    def error(self, operation: str) -> None:
        """Count a failed or skipped ``operation``."""
        self._metrics.errors.labels(self.namespace, operation).inc()

    def observe(self, operation: str, seconds: float) -> None:
        """Record how long ``operation`` took."""
        self._metrics.duration.labels(self.namespace, operation).observe(seconds)


def metrics_for(registry: CollectorRegistry | None) -> CacheMetrics:
    """Return the metric families in ``registry`` (the default one when None), creating them once.

    Every :class:`~aegis.cache.Cache` on a registry shares them; the ``namespace`` label tells
    caches apart.
    """
    return _by_registry(REGISTRY if registry is None else registry)


def _declare(target: CollectorRegistry) -> CacheMetrics:
    return CacheMetrics(
        hits=Counter(
            "aegis_cache_hits_total",
            "Cache reads that found a value; layer is near (in process) or remote (Redis).",
            ["namespace", "layer"],
            registry=target,
        ),
        misses=Counter(
            "aegis_cache_misses_total",
            "Cache reads that found nothing (or could not reach Redis).",
            ["namespace"],
            registry=target,
        ),
        errors=Counter(
            "aegis_cache_errors_total",
            "Cache operations that failed or were skipped because Redis was down or slow.",
            ["namespace", "operation"],
            registry=target,
        ),
        duration=Histogram(
            "aegis_cache_operation_duration_seconds",
            "Time of cache operations that reached the backend.",
            ["namespace", "operation"],
            buckets=_BUCKETS,
            registry=target,
        ),
        circuit_open=Gauge(
            "aegis_cache_circuit_open",
            "1 while the circuit breaker to Redis is open (the cache is skipped), else 0.",
            ["namespace"],
            registry=target,
        ),
    )


_by_registry: OncePerObject[CollectorRegistry, CacheMetrics] = OncePerObject(_declare)

"""The HTTP metrics of :class:`~aegis.obs.ObservabilityMiddleware`, recorded per (method, route).

In one process the figures are plain numbers under one lock, turned into metric families only
when Prometheus scrapes (a prometheus_client ``Collector``): a request takes the lock twice
(route chosen, response done) instead of making five metric calls that take seven locks
(benchmarks/obs_overhead.py). With
``PROMETHEUS_MULTIPROC_DIR`` set, every worker must write its samples to that directory, which
only prometheus_client's own metrics do, so they are used there.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from typing import Any, Final, Protocol

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from aegis.core.errors import ConfigurationError
from aegis.core.metrics import bucket_bounds, cumulative_buckets, multiprocess_mode
from aegis.core.utils.weak import OncePerObject
from aegis.obs._metrics import counter, gauge, histogram

_REQUESTS: Final = "aegis_http_requests"
_DURATION: Final = "aegis_http_request_duration_seconds"
_IN_PROGRESS: Final = "aegis_http_requests_in_progress"
_SIZE: Final = "aegis_http_response_size_bytes"
_HELP: Final = {
    _REQUESTS: "HTTP requests and WebSocket sessions handled, by route template and status code.",
    _DURATION: "Time from receiving a request to sending the last byte of its response.",
    _IN_PROGRESS: "Requests and WebSocket sessions being served, counted from route selection.",
    _SIZE: "Bytes of response body sent.",
}
_LABELS: Final = ("method", "route")
_Families = tuple[
    CounterMetricFamily, HistogramMetricFamily, GaugeMetricFamily, HistogramMetricFamily
]


class RouteMetrics(Protocol):
    """What the middleware records for one (method, route) pair."""

    def enter(self) -> None:
        """Count one more request in progress."""

    def leave(self) -> None:
        """Count one request fewer in progress."""

    def finish(self, left: bool, duration: float, size: int | None, status: int) -> None:
        """Record a finished request (``left``: take it out of the in-progress count too)."""


class HttpMetrics(Protocol):
    """The HTTP metrics of one registry."""

    def route(self, method: str, route: str) -> RouteMetrics:
        """The recorder of ``(method, route)``, created on first use."""

    def enter(self, method: str, route: str) -> RouteMetrics:
        """The recorder of ``(method, route)``, with one more request in progress."""


class _RouteFigures:
    """Counts of one (method, route) pair; every change holds the collector's lock."""

    __slots__ = (
        "_collector",
        "duration_sum",
        "durations",
        "in_progress",
        "labels",
        "size_sum",
        "sizes",
        "statuses",
    )  # fmt: skip

    def __init__(self, collector: _Collector, labels: tuple[str, str]) -> None:
        self._collector = collector
        self.labels = labels
        self.in_progress = 0
        self.durations = [0] * len(collector.buckets)
        self.duration_sum = 0.0
        self.sizes = [0] * len(collector.size_buckets)
        self.size_sum = 0
        self.statuses: dict[int, int] = {}

    # The lock is taken with acquire() and released in `finally`, not with `with`: on these
    # per-request paths the with statement's __enter__/__exit__ calls cost more than the
    # update they guard (callgrind), and the two are equivalent.

    def enter(self) -> None:
        lock = self._collector.lock
        lock.acquire()
        try:
            self.in_progress += 1
        finally:
            lock.release()

    def leave(self) -> None:
        lock = self._collector.lock
        lock.acquire()
        try:
            self.in_progress -= 1
        finally:
            lock.release()

    def finish(self, left: bool, duration: float, size: int | None, status: int) -> None:
        collector = self._collector
        lock = collector.lock
        lock.acquire()
        try:
            if left:
                self.in_progress -= 1
            self.durations[bisect_left(collector.buckets, duration)] += 1
            self.duration_sum += duration
            if size is not None:
                self.sizes[bisect_left(collector.size_buckets, size)] += 1
                self.size_sum += size
            self.statuses[status] = self.statuses.get(status, 0) + 1
        finally:
            lock.release()


class _Collector(Collector):
    """Single-process HTTP metrics: numbers under one lock, metric families on scrape."""

    def __init__(self, buckets: Sequence[float], size_buckets: Sequence[float]) -> None:
        self.buckets = bucket_bounds(buckets)
        self.size_buckets = bucket_bounds(size_buckets)
        self.lock = threading.Lock()
        self._routes: dict[tuple[str, str], _RouteFigures] = {}

    def route(self, method: str, route: str) -> _RouteFigures:
        key = (method, route)
        found = self._routes.get(key)
        if found is None:
            with self.lock:
                found = self._routes.setdefault(key, _RouteFigures(self, key))
        return found

    def enter(self, method: str, route: str) -> _RouteFigures:
        # route() and _RouteFigures.enter() in one call: a route is selected once per request.
        found = self._routes.get((method, route))
        if found is None:
            found = self.route(method, route)
        lock = self.lock
        lock.acquire()  # not `with`: see _RouteFigures
        try:
            found.in_progress += 1
        finally:
            lock.release()
        return found

    def describe(self) -> Iterator[Metric]:
        yield from self._families()

    def collect(self) -> Iterator[Metric]:
        with self.lock:
            figures = [
                (r.labels, r.in_progress, [*r.durations], r.duration_sum, [*r.sizes], r.size_sum,
                 dict(r.statuses))
                for r in self._routes.values()
            ]  # fmt: skip
        requests, duration, in_progress, size = self._families()
        for labels, active, durations, duration_sum, sizes, size_sum, statuses in figures:
            for status, count in sorted(statuses.items()):
                requests.add_metric([*labels, str(status)], count)
            duration.add_metric(labels, cumulative_buckets(self.buckets, durations), duration_sum)
            in_progress.add_metric(labels, active)
            size.add_metric(labels, cumulative_buckets(self.size_buckets, sizes), size_sum)
        yield from (requests, duration, in_progress, size)

    def _families(self) -> _Families:
        return (
            CounterMetricFamily(_REQUESTS, _HELP[_REQUESTS], labels=(*_LABELS, "status")),
            HistogramMetricFamily(_DURATION, _HELP[_DURATION], labels=_LABELS),
            GaugeMetricFamily(_IN_PROGRESS, _HELP[_IN_PROGRESS], labels=_LABELS),
            HistogramMetricFamily(_SIZE, _HELP[_SIZE], labels=_LABELS),
        )


class _RouteChildren:
    """The pre-bound prometheus_client children of one (method, route) pair."""

    __slots__ = ("_labels", "_requests", "duration", "in_progress", "size", "totals")

    def __init__(self, metrics: _ClientMetrics, method: str, route: str) -> None:
        self._labels = (method, route)
        self._requests = metrics.requests
        self.duration = metrics.duration.labels(method, route)
        self.in_progress = metrics.in_progress.labels(method, route)
        self.size = metrics.size.labels(method, route)
        self.totals: dict[int, Any] = {}

    def enter(self) -> None:
        self.in_progress.inc()

    def leave(self) -> None:
        self.in_progress.dec()

    def finish(self, left: bool, duration: float, size: int | None, status: int) -> None:
        if left:
            self.in_progress.dec()
        self.duration.observe(duration)
        if size is not None:
            self.size.observe(size)
        child = self.totals.get(status)
        if child is None:
            child = self.totals[status] = self._requests.labels(*self._labels, str(status))
        child.inc()


class _ClientMetrics:
    """Multiprocess HTTP metrics: prometheus_client's own, which write to the shared directory."""

    def __init__(
        self,
        registry: CollectorRegistry | None,
        buckets: Sequence[float],
        size_buckets: Sequence[float],
    ) -> None:
        self.requests = counter(
            "requests_total", _HELP[_REQUESTS], (*_LABELS, "status"),
            namespace="aegis", subsystem="http", registry=registry,
        )  # fmt: skip
        self.duration = histogram(
            "request_duration_seconds", _HELP[_DURATION], _LABELS,
            namespace="aegis", subsystem="http", registry=registry, buckets=buckets,
        )  # fmt: skip
        self.in_progress = gauge(
            "requests_in_progress", _HELP[_IN_PROGRESS], _LABELS,
            namespace="aegis", subsystem="http", registry=registry, multiprocess_mode="livesum",
        )  # fmt: skip
        self.size = histogram(
            "response_size_bytes", _HELP[_SIZE], _LABELS,
            namespace="aegis", subsystem="http", registry=registry, buckets=size_buckets,
        )  # fmt: skip
        self._children: dict[tuple[str, str], _RouteChildren] = {}

    def route(self, method: str, route: str) -> _RouteChildren:
        key = (method, route)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = _RouteChildren(self, method, route)
        return found

    def enter(self, method: str, route: str) -> _RouteChildren:
        found = self.route(method, route)
        found.enter()
        return found


# Every middleware on one registry shares its collector: Prometheus allows one of each name.
_collectors: OncePerObject[CollectorRegistry, _Collector] = OncePerObject()


def http_metrics(
    registry: CollectorRegistry | None, buckets: Sequence[float], size_buckets: Sequence[float]
) -> HttpMetrics:
    """The HTTP metrics of ``registry`` (the default one when ``None``), declared once.

    Raises:
        ConfigurationError: Another collector of the registry already uses one of the names.
    """
    if multiprocess_mode():
        return _ClientMetrics(registry, buckets, size_buckets)

    def register(target: CollectorRegistry) -> _Collector:
        collector = _Collector(buckets, size_buckets)
        try:
            target.register(collector)
        except ValueError as exc:
            raise ConfigurationError(f"the HTTP metrics cannot be registered: {exc}") from exc
        return collector

    return _collectors(REGISTRY if registry is None else registry, register)

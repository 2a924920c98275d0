"""Prometheus metrics kept as plain numbers and turned into metric families only on scrape.

Needs the ``metrics`` extra (prometheus-client). prometheus_client's ``Histogram.observe`` walks
the buckets in Python and takes two locks, and ``Counter.inc`` one more; a metric recorded on a
hot path (per request, per message) costs less as a plain number under one lock, rendered when
Prometheus scrapes. :class:`PlainCounter` and :class:`PlainHistogram` keep prometheus_client's
``labels(...).inc()`` / ``.observe()`` calls, so a member can choose either by
:func:`multiprocess_mode`: with ``PROMETHEUS_MULTIPROC_DIR`` set, every worker must write its
samples to that directory, which only prometheus_client's own metrics do.

Example:
    >>> from prometheus_client import CollectorRegistry, generate_latest
    >>> registry = CollectorRegistry()
    >>> handled = PlainCounter("jobs_handled_total", "Jobs handled.", ["queue"], registry)
    >>> handled.labels("mail").inc()
    >>> b'jobs_handled_total{queue="mail"} 1.0' in generate_latest(registry)
    True
"""

from __future__ import annotations

import os
import threading
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import reduce
from itertools import repeat
from operator import add
from typing import Final, cast

from aegis.core.utils.lazy import extra_required

# Without the extra, say which one to install instead of a bare "No module named".
with extra_required(__name__, {"prometheus_client": "aegis-core[metrics]"}):
    from prometheus_client import CollectorRegistry
    from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
    from prometheus_client.registry import Collector
    from prometheus_client.utils import floatToGoString

MULTIPROCESS_DIR_VARIABLE: Final = "PROMETHEUS_MULTIPROC_DIR"
"""The environment variable that turns on prometheus_client's multiprocess mode."""

_bound_label: Final = cast("Callable[[float], str]", floatToGoString)
"""The ``le`` label text prometheus_client itself writes (``0.005``, ``+Inf``)."""


def multiprocess_mode() -> bool:
    """Whether prometheus_client's multiprocess mode is on (``PROMETHEUS_MULTIPROC_DIR``)."""
    return bool(os.environ.get(MULTIPROCESS_DIR_VARIABLE))


def bucket_bounds(buckets: Iterable[float]) -> tuple[float, ...]:
    """Histogram upper bounds, sorted, ending in ``+Inf``."""
    bounds = tuple(sorted(float(bound) for bound in buckets))
    return bounds if bounds and bounds[-1] == float("inf") else (*bounds, float("inf"))


def cumulative_buckets(bounds: Sequence[float], counts: Sequence[int]) -> list[tuple[str, float]]:
    """Per-bucket counts as the cumulative ``(le, count)`` pairs a histogram family takes."""
    total = 0
    buckets = []
    for bound, count in zip(bounds, counts, strict=True):
        total += count
        buckets.append((_bound_label(bound), float(total)))
    return buckets


class CountedChild:
    """One label set of a :class:`PlainCounter`."""

    __slots__ = ("_lock", "value")

    def __init__(self, lock: threading.Lock) -> None:
        self._lock = lock
        self.value = 0.0

    def inc(self, amount: float = 1) -> None:
        """Add ``amount`` (default 1)."""
        # acquire() and `finally`, not `with`: equivalent, and on a per-event path the with
        # statement's __enter__/__exit__ calls cost more than the update itself (callgrind).
        lock = self._lock
        lock.acquire()
        try:
            self.value += amount
        finally:
            lock.release()


class ObservedChild:
    """One label set of a :class:`PlainHistogram`: a count per bucket and the sum."""

    __slots__ = ("_bounds", "_lock", "counts", "sum")

    def __init__(self, lock: threading.Lock, bounds: tuple[float, ...]) -> None:
        self._lock = lock
        self._bounds = bounds
        self.counts = [0] * len(bounds)
        self.sum = 0.0

    def observe(self, amount: float) -> None:
        """Record one value."""
        index = bisect_left(self._bounds, amount)
        lock = self._lock
        lock.acquire()  # not `with`: see CountedChild.inc
        try:
            self.counts[index] += 1
            self.sum += amount
        finally:
            lock.release()

    def observe_many(self, amounts: Iterable[float]) -> None:
        """Record each of ``amounts``, in order, as that many :meth:`observe` calls would.

        One lock and one call for a batch: where values are produced in a loop (a duration
        per message of a fetched batch), collecting them and recording them together costs
        a fraction of a call per value. The counts and the sum come out exactly as from
        ``observe`` of each value in turn (the sum added to in the same order).

        Example:
            >>> from prometheus_client import CollectorRegistry
            >>> seconds = PlainHistogram("t", "T.", [], CollectorRegistry(), buckets=[1])
            >>> seconds.labels().observe_many([0.5, 2.0, 0.25])
            >>> seconds.labels().counts, seconds.labels().sum
            ([2, 1], 2.75)
        """
        values = amounts if isinstance(amounts, list | tuple) else list(amounts)
        # The buckets looked up outside the lock, in C; the sum as repeated `+=` would make
        # it (reduce adds left to right, where sum() may round otherwise: Python 3.12).
        indexes = list(map(bisect_left, repeat(self._bounds, len(values)), values))
        lock = self._lock
        lock.acquire()  # not `with`: see CountedChild.inc
        try:
            counts = self.counts
            for index in indexes:
                counts[index] += 1
            self.sum = reduce(add, values, self.sum)
        finally:
            lock.release()


class _PlainMetric(Collector):
    def __init__(
        self, name: str, documentation: str, labelnames: Sequence[str], registry: CollectorRegistry
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self.lock = threading.Lock()
        registry.register(self)

    def describe(self) -> Iterable[Metric]:
        return self.collect()  # the family's name and type: what registering checks


class PlainCounter(_PlainMetric):
    """A labelled counter: ``labels(*values).inc()``; a ``_total`` suffix is written once."""

    def __init__(
        self, name: str, documentation: str, labelnames: Sequence[str], registry: CollectorRegistry
    ) -> None:
        self._children: dict[tuple[str, ...], CountedChild] = {}
        super().__init__(name.removesuffix("_total"), documentation, labelnames, registry)

    def labels(self, *values: str) -> CountedChild:
        """The child of ``values`` (created on first use)."""
        child = self._children.get(values)
        if child is None:
            with self.lock:
                child = self._children.setdefault(values, CountedChild(self.lock))
        return child

    def collect(self) -> Iterator[Metric]:
        """The counts as one counter family."""
        with self.lock:
            values = [(labels, child.value) for labels, child in self._children.items()]
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for labels, value in values:
            family.add_metric(labels, value)
        yield family


class PlainHistogram(_PlainMetric):
    """A labelled histogram: ``labels(*values).observe(seconds)``."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        registry: CollectorRegistry,
        *,
        buckets: Sequence[float],
    ) -> None:
        self.bounds = bucket_bounds(buckets)
        self._children: dict[tuple[str, ...], ObservedChild] = {}
        super().__init__(name, documentation, labelnames, registry)

    def labels(self, *values: str) -> ObservedChild:
        """The child of ``values`` (created on first use)."""
        child = self._children.get(values)
        if child is None:
            with self.lock:
                child = self._children.setdefault(values, ObservedChild(self.lock, self.bounds))
        return child

    def collect(self) -> Iterator[Metric]:
        """The observations as one histogram family."""
        with self.lock:
            figures = [(labels, [*c.counts], c.sum) for labels, c in self._children.items()]
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for labels, counts, total in figures:
            family.add_metric(labels, cumulative_buckets(self.bounds, counts), total)
        yield family

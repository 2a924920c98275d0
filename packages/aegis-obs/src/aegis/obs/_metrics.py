"""Metric helpers: declare Prometheus metrics once per registry, and time or count functions.

prometheus_client refuses a second metric of the same name in one registry ("Duplicated
timeseries"), which bites on module re-import and in tests that build an app twice. The helpers
here return the metric already declared under that name when its type and labels agree, and
raise :class:`~aegis.core.errors.ConfigurationError` naming the difference when they do not.
"""

from __future__ import annotations

import functools
import inspect
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Literal, ParamSpec, Protocol, TypeVar, cast

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, Summary
from prometheus_client.metrics import MetricWrapperBase

from aegis.core.errors import ConfigurationError
from aegis.core.utils.weak import OncePerObject

_P = ParamSpec("_P")
_R = TypeVar("_R")
_M = TypeVar("_M", bound=MetricWrapperBase)

_METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
# "le" and "quantile" are added by histograms and summaries themselves.
_RESERVED_LABELS = frozenset({"le", "quantile"})

GaugeMode = Literal[
    "all", "liveall", "min", "livemin", "max", "livemax", "sum", "livesum", "mostrecent",
    "livemostrecent",
]  # fmt: skip

_declared: OncePerObject[
    CollectorRegistry, dict[str, tuple[MetricWrapperBase, tuple[str, ...]]]
] = OncePerObject(lambda _registry: {})


def _full_name(kind: type[MetricWrapperBase], name: str, namespace: str, subsystem: str) -> str:
    if kind is Counter:
        # prometheus_client stores counters without the suffix and adds it on exposition.
        name = name.removesuffix("_total")
    return "_".join(part for part in (namespace, subsystem, name) if part)


def _validate_labels(full_name: str, labelnames: Iterable[str]) -> tuple[str, ...]:
    names = tuple(labelnames)
    for label in names:
        if not _LABEL_NAME.match(label) or label.startswith("__"):
            raise ConfigurationError(
                f"metric {full_name}: label name {label!r} is invalid; use letters, digits "
                "and underscores, not starting with a digit or '__'"
            )
        if label in _RESERVED_LABELS:
            raise ConfigurationError(
                f"metric {full_name}: label name {label!r} is reserved by Prometheus"
            )
    if len(set(names)) != len(names):
        raise ConfigurationError(f"metric {full_name}: label names repeat: {list(names)}")
    return names


def _declare(
    kind: type[_M],
    name: str,
    documentation: str,
    labelnames: Iterable[str],
    *,
    namespace: str,
    subsystem: str,
    unit: str,
    registry: CollectorRegistry | None,
    **options: object,
) -> _M:
    registry = REGISTRY if registry is None else registry
    full_name = _full_name(kind, name, namespace, subsystem)
    if unit and not full_name.endswith(f"_{unit}"):
        full_name = f"{full_name}_{unit}"
    if not _METRIC_NAME.match(full_name):
        raise ConfigurationError(
            f"metric name {full_name!r} is invalid; use letters, digits, '_' and ':'"
        )
    names = _validate_labels(full_name, labelnames)
    declared = _declared(registry)
    if full_name in declared:
        metric, existing_labels = declared[full_name]
        if type(metric) is not kind:
            raise ConfigurationError(
                f"metric {full_name} is already declared as a {type(metric).__name__}, "
                f"not a {kind.__name__}"
            )
        if existing_labels != names:
            raise ConfigurationError(
                f"metric {full_name} is already declared with labels {list(existing_labels)}, "
                f"not {list(names)}"
            )
        return metric
    try:
        metric = kind(
            full_name.removesuffix(f"_{unit}") if unit else full_name,
            documentation,
            names,
            unit=unit,
            registry=registry,
            **options,  # type: ignore[arg-type]
        )
    except ValueError as exc:
        raise ConfigurationError(f"metric {full_name} cannot be declared: {exc}") from exc
    declared[full_name] = (metric, names)
    return metric


def counter(
    name: str,
    documentation: str,
    labelnames: Sequence[str] = (),
    *,
    namespace: str = "",
    subsystem: str = "",
    unit: str = "",
    registry: CollectorRegistry | None = None,
) -> Counter:
    """Declare a counter, or return the one already declared under this name.

    Args:
        name: The metric name; ``_total`` is added on exposition if missing.
        documentation: The HELP text.
        labelnames: The label names; every sample must give each one a value.
        namespace: Prefix joined with ``_`` (``aegis`` gives ``aegis_<name>``).
        subsystem: Second prefix, between namespace and name.
        unit: Unit suffix (``seconds``, ``bytes``), added when the name lacks it.
        registry: The registry; the process-wide default when ``None``.

    Raises:
        ConfigurationError: The name or a label name is invalid, or the name is already
            declared with another type or other labels.

    Example:
        >>> orders = counter("orders_created_total", "Orders created", ["channel"])
        >>> orders.labels(channel="web").inc()
    """
    return _declare(
        Counter,
        name,
        documentation,
        labelnames,
        namespace=namespace,
        subsystem=subsystem,
        unit=unit,
        registry=registry,
    )


def gauge(
    name: str,
    documentation: str,
    labelnames: Sequence[str] = (),
    *,
    namespace: str = "",
    subsystem: str = "",
    unit: str = "",
    registry: CollectorRegistry | None = None,
    multiprocess_mode: GaugeMode = "all",
) -> Gauge:
    """Declare a gauge, or return the one already declared under this name.

    ``multiprocess_mode`` says how values of several worker processes combine under
    ``PROMETHEUS_MULTIPROC_DIR`` (``livesum`` for "requests in progress"). Other arguments and
    errors are those of :func:`counter`.
    """
    return _declare(
        Gauge,
        name,
        documentation,
        labelnames,
        namespace=namespace,
        subsystem=subsystem,
        unit=unit,
        registry=registry,
        multiprocess_mode=multiprocess_mode,
    )


def histogram(
    name: str,
    documentation: str,
    labelnames: Sequence[str] = (),
    *,
    namespace: str = "",
    subsystem: str = "",
    unit: str = "",
    registry: CollectorRegistry | None = None,
    buckets: Sequence[float] = Histogram.DEFAULT_BUCKETS,
) -> Histogram:
    """Declare a histogram with the given bucket upper bounds, or return the declared one.

    Other arguments and errors are those of :func:`counter`.
    """
    return _declare(
        Histogram,
        name,
        documentation,
        labelnames,
        namespace=namespace,
        subsystem=subsystem,
        unit=unit,
        registry=registry,
        buckets=tuple(buckets),
    )


def summary(
    name: str,
    documentation: str,
    labelnames: Sequence[str] = (),
    *,
    namespace: str = "",
    subsystem: str = "",
    unit: str = "",
    registry: CollectorRegistry | None = None,
) -> Summary:
    """Declare a summary (count and sum, no quantiles), or return the declared one.

    Arguments and errors are those of :func:`counter`.
    """
    return _declare(
        Summary,
        name,
        documentation,
        labelnames,
        namespace=namespace,
        subsystem=subsystem,
        unit=unit,
        registry=registry,
    )


def _bind(metric: _M, labels: dict[str, str]) -> _M:
    if not labels:
        return metric
    try:
        return metric.labels(**labels)
    except ValueError as exc:
        raise ConfigurationError(f"labels {labels} do not fit the metric: {exc}") from exc


class FunctionDecorator(Protocol):
    """A decorator that keeps the signature of the sync or async function it wraps."""

    def __call__(self, function: Callable[_P, _R], /) -> Callable[_P, _R]:
        """Return the wrapped function."""


def _wrap(
    function: Callable[_P, _R], before: Callable[[], object], after: Callable[[object], None]
) -> Callable[_P, _R]:
    if inspect.iscoroutinefunction(function):
        async_function = cast("Callable[_P, Awaitable[object]]", function)

        @functools.wraps(function)
        async def run_async(*args: _P.args, **kwargs: _P.kwargs) -> object:
            state = before()
            try:
                return await async_function(*args, **kwargs)
            finally:
                after(state)

        return cast("Callable[_P, _R]", run_async)

    @functools.wraps(function)
    def run(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        state = before()
        try:
            return function(*args, **kwargs)
        finally:
            after(state)

    return run


def timed(metric: Histogram | Summary, **labels: str) -> FunctionDecorator:
    """Observe how long each call of the decorated sync or async function takes, in seconds.

    Calls that raise are observed too. The labelled child is bound once, at decoration.

    Raises:
        ConfigurationError: ``labels`` do not match the metric's label names.

    Example:
        >>> latency = histogram("pricing_seconds", "Time to price an order", ["kind"])
        >>> @timed(latency, kind="quote")
        ... async def price(order_id: int) -> int: ...
    """
    child = _bind(metric, labels)

    def stop(started: object) -> None:
        child.observe(time.perf_counter() - cast("float", started))

    def decorate(function: Callable[_P, _R]) -> Callable[_P, _R]:
        return _wrap(function, time.perf_counter, stop)

    return decorate


def counted(metric: Counter, **labels: str) -> FunctionDecorator:
    """Count each call of the decorated sync or async function, including calls that raise.

    Raises:
        ConfigurationError: ``labels`` do not match the metric's label names.
    """
    child = _bind(metric, labels)

    def decorate(function: Callable[_P, _R]) -> Callable[_P, _R]:
        return _wrap(function, child.inc, lambda _: None)

    return decorate


def in_progress(metric: Gauge, **labels: str) -> FunctionDecorator:
    """Raise the gauge while a call of the decorated sync or async function runs.

    Raises:
        ConfigurationError: ``labels`` do not match the metric's label names.
    """
    child = _bind(metric, labels)

    def decorate(function: Callable[_P, _R]) -> Callable[_P, _R]:
        return _wrap(function, child.inc, lambda _: child.dec())

    return decorate


__all__ = [
    "FunctionDecorator",
    "GaugeMode",
    "counted",
    "counter",
    "gauge",
    "histogram",
    "in_progress",
    "summary",
    "timed",
]

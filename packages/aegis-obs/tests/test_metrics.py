"""Metric helpers: declare twice without "Duplicated timeseries", validate, time and count."""

from __future__ import annotations

import anyio
import pytest
from prometheus_client import CollectorRegistry, Counter

from aegis.core.errors import ConfigurationError
from aegis.obs import counted, counter, gauge, histogram, in_progress, summary, timed


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_declaring_a_metric_twice_returns_the_same_metric(registry: CollectorRegistry) -> None:
    first = counter("orders_created_total", "Orders", ["channel"], registry=registry)
    second = counter("orders_created_total", "Orders", ["channel"], registry=registry)
    assert first is second
    second.labels("web").inc()
    assert value(registry, "orders_created_total", channel="web") == 1


def test_namespace_subsystem_and_unit_build_the_name(registry: CollectorRegistry) -> None:
    latency = histogram(
        "latency", "Latency", namespace="shop", subsystem="cart", unit="seconds", registry=registry
    )
    latency.observe(0.2)
    assert value(registry, "shop_cart_latency_seconds_count") == 1
    assert (
        histogram(
            "latency_seconds", "Latency", namespace="shop", subsystem="cart", registry=registry
        )
        is latency
    )


def test_histogram_uses_the_given_buckets(registry: CollectorRegistry) -> None:
    sizes = histogram("batch_size", "Batch size", buckets=[1, 10], registry=registry)
    sizes.observe(5)
    assert value(registry, "batch_size_bucket", le="1.0") == 0
    assert value(registry, "batch_size_bucket", le="10.0") == 1


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (["path", "path"], "repeat"),
        (["le"], "reserved"),
        (["__meta"], "invalid"),
        (["1st"], "invalid"),
    ],
)
def test_invalid_label_sets_are_refused(
    registry: CollectorRegistry, labels: list[str], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        gauge("queue_depth", "Depth", labels, registry=registry)


def test_redeclaring_with_another_type_or_labels_is_refused(registry: CollectorRegistry) -> None:
    counter("jobs_total", "Jobs", ["queue"], registry=registry)
    with pytest.raises(ConfigurationError, match="already declared as a Counter"):
        gauge("jobs", "Jobs", ["queue"], registry=registry)
    with pytest.raises(ConfigurationError, match=r"labels \['queue'\], not \['kind'\]"):
        counter("jobs_total", "Jobs", ["kind"], registry=registry)


def test_invalid_metric_name_and_foreign_duplicates_are_refused(
    registry: CollectorRegistry,
) -> None:
    with pytest.raises(ConfigurationError, match="is invalid"):
        counter("bad-name", "Bad", registry=registry)
    Counter("legacy_total", "Declared without the helpers", registry=registry)
    with pytest.raises(ConfigurationError, match="cannot be declared"):
        counter("legacy_total", "Again", registry=registry)


def test_decorators_measure_sync_functions_including_failures(
    registry: CollectorRegistry,
) -> None:
    calls = counter("calls_total", "Calls", ["fn"], registry=registry)
    latency = summary("call_seconds", "Latency", ["fn"], registry=registry)

    @counted(calls, fn="parse")
    @timed(latency, fn="parse")
    def parse(text: str) -> int:
        return int(text)

    assert parse("3") == 3
    with pytest.raises(ValueError, match="invalid literal"):
        parse("x")
    assert value(registry, "calls_total", fn="parse") == 2
    assert value(registry, "call_seconds_count", fn="parse") == 2
    assert parse.__name__ == "parse"


@pytest.mark.anyio
async def test_in_progress_counts_running_async_calls(registry: CollectorRegistry) -> None:
    running = gauge("jobs_running", "Running jobs", registry=registry)
    latency = histogram("job_seconds", "Job time", registry=registry)
    started, release = anyio.Event(), anyio.Event()

    @in_progress(running)
    @timed(latency)
    async def job() -> str:
        started.set()
        await release.wait()
        return "done"

    async with anyio.create_task_group() as group:
        group.start_soon(job)
        await started.wait()
        assert value(registry, "jobs_running") == 1
        release.set()
    assert value(registry, "jobs_running") == 0
    assert value(registry, "job_seconds_count") == 1


def test_decorator_labels_must_match_the_metric(registry: CollectorRegistry) -> None:
    calls = counter("labelled_total", "Calls", ["fn"], registry=registry)
    with pytest.raises(ConfigurationError, match="do not fit"):
        counted(calls, function="x")

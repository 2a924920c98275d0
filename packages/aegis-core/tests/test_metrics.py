"""The plain-number counter and histogram expose exactly what prometheus_client's would."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from aegis.core.metrics import PlainCounter, PlainHistogram

BUCKETS = (0.0005, 0.001, 0.25, 1, 5)
VALUES = [0.0, 0.0005, 0.0007, 0.001, 0.3, 2.5, 7.0, 1e9]


def test_the_same_records_give_the_same_exposition_as_prometheus_client() -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    counters: list[Any] = [
        PlainCounter("jobs_total", "Jobs.", ["queue"], ours),
        Counter("jobs_total", "Jobs.", ["queue"], registry=theirs),
    ]
    histograms: list[Any] = [
        PlainHistogram("job_seconds", "Job time.", ["queue"], ours, buckets=BUCKETS),
        Histogram("job_seconds", "Job time.", ["queue"], buckets=BUCKETS, registry=theirs),
    ]
    for counter, histogram in zip(counters, histograms, strict=True):
        for queue in ("a", "b"):
            counter.labels(queue).inc()
            counter.labels(queue).inc(2.5)
            for value in VALUES if queue == "a" else VALUES[:2]:
                histogram.labels(queue).observe(value)
    ours_text = generate_latest(ours).decode()
    theirs_text = generate_latest(theirs).decode()
    # prometheus_client also writes a _created sample per child: the one difference.
    assert ours_text == "".join(
        line for line in theirs_text.splitlines(keepends=True) if "_created" not in line
    )


def test_observe_many_gives_the_exposition_of_observe_for_each_value() -> None:
    one, many = CollectorRegistry(), CollectorRegistry()
    singly = PlainHistogram("job_seconds", "Job time.", ["queue"], one, buckets=BUCKETS)
    together = PlainHistogram("job_seconds", "Job time.", ["queue"], many, buckets=BUCKETS)
    # Sums whose rounding depends on the order and grouping of the additions.
    values = [*VALUES, 0.1, 0.2, 0.3, 1e-17, 1e16, 1.0, -1e16, 0.1]
    for value in values:
        singly.labels("a").observe(value)
    together.labels("a").observe_many(values[:5])
    together.labels("a").observe_many(iter(values[5:]))  # any iterable
    together.labels("a").observe_many([])
    singly.labels("b").observe(0.3)
    together.labels("b").observe_many((0.3,))
    assert generate_latest(many) == generate_latest(one)
    assert together.labels("a").sum == singly.labels("a").sum
    assert together.labels("a").counts == singly.labels("a").counts


def test_the_readme_example_runs() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("## Metrics on hot paths", 1)[1]
    block = section.split("```python\n", 1)[1].split("```", 1)[0]
    exec(compile(block, "README.md", "exec"), {})  # noqa: S102 - our own documentation

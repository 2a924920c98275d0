"""The public names of aegis.obs: an addition or removal shows up here in review."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

import aegis.obs
from aegis.testing import import_error_without


def test_public_names_are_exactly_these() -> None:
    assert aegis.obs.__all__ == [
        "DEFAULT_EXCLUDED_PATHS",
        "DEFAULT_SIZE_BUCKETS",
        "HEALTH_JSON",
        "MULTIPROCESS_DIR_VARIABLE",
        "UNMATCHED_ROUTE",
        "Attributes",
        "CheckResult",
        "FunctionDecorator",
        "GaugeMode",
        "HealthCheckError",
        "HealthCheckFunction",
        "HealthRegistry",
        "HealthReport",
        "HealthStatus",
        "MetricsEndpoint",
        "ObservabilityMiddleware",
        "TracingSettings",
        "__version__",
        "aggregate",
        "counted",
        "counter",
        "current_trace_ids",
        "disk_space_check",
        "extract",
        "gauge",
        "health_routes",
        "histogram",
        "http_check",
        "in_progress",
        "inject",
        "instrument_engine",
        "instrument_httpx",
        "kafka_check",
        "metrics_route",
        "redis_check",
        "setup_tracing",
        "span",
        "sqlalchemy_check",
        "statement_operation",
        "summary",
        "timed",
        "traced",
    ]
    assert all(hasattr(aegis.obs, name) for name in aegis.obs.__all__)
    assert aegis.obs.__version__ == "0.1.0"


def test_every_public_function_and_class_has_a_docstring() -> None:
    objects = {name: getattr(aegis.obs, name) for name in aegis.obs.__all__}
    undocumented = [
        name
        for name, value in objects.items()
        if (inspect.isfunction(value) or inspect.isclass(value)) and not value.__doc__
    ]
    assert undocumented == []


def test_import_needs_none_of_the_optional_client_libraries() -> None:
    optional = ["httpx", "sqlalchemy", "redis", "confluent_kafka", "opentelemetry.sdk"]
    code = f"import sys, aegis.obs; print([m for m in {optional!r} if m in sys.modules])"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("hidden", "statement", "extra"),
    [
        ("httpx", "from aegis.obs import instrument_httpx", "http"),
        ("httpx", "aegis.obs.http_check('http://127.0.0.1:1/')", "http"),
        ("sqlalchemy", "aegis.obs.sqlalchemy_check(None)", "sqlalchemy"),
        ("confluent_kafka", "aegis.obs.kafka_check('127.0.0.1:9092')", "kafka"),
    ],
)
def test_a_name_whose_extra_is_missing_says_which_extra_to_install(
    hidden: str, statement: str, extra: str
) -> None:
    message = import_error_without([hidden], f"import aegis.obs\n{statement}")
    assert message is not None
    assert f"needs {hidden}, which is not installed" in message
    assert message.endswith(f"pip install 'aegis-obs[{extra}]'")

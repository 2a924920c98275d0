"""aegis.obs: Prometheus metrics and ``/metrics``, OpenTelemetry tracing, and health checks.

Example:
    >>> from starlette.applications import Starlette
    >>> from starlette.middleware import Middleware
    >>> from aegis.obs import HealthRegistry, ObservabilityMiddleware, health_routes, metrics_route
    >>> health = HealthRegistry()
    >>> app = Starlette(
    ...     routes=[*health_routes(health), metrics_route()],
    ...     middleware=[Middleware(ObservabilityMiddleware)],
    ... )
"""

from typing import TYPE_CHECKING

from aegis.core.utils.lazy import lazy_getattr
from aegis.obs.__about__ import __version__
from aegis.obs._asgi import (
    DEFAULT_EXCLUDED_PATHS,
    DEFAULT_SIZE_BUCKETS,
    UNMATCHED_ROUTE,
    ObservabilityMiddleware,
)
from aegis.obs._exposition import MULTIPROCESS_DIR_VARIABLE, MetricsEndpoint, metrics_route
from aegis.obs._health import (
    HEALTH_JSON,
    CheckResult,
    HealthCheckError,
    HealthCheckFunction,
    HealthRegistry,
    HealthReport,
    HealthStatus,
    aggregate,
)
from aegis.obs._health_asgi import health_routes
from aegis.obs._health_checks import (
    disk_space_check,
    http_check,
    kafka_check,
    redis_check,
    sqlalchemy_check,
)
from aegis.obs._metrics import (
    FunctionDecorator,
    GaugeMode,
    counted,
    counter,
    gauge,
    histogram,
    in_progress,
    summary,
    timed,
)
from aegis.obs._sqlalchemy import instrument_engine, statement_operation
from aegis.obs._tracing import (
    Attributes,
    current_trace_ids,
    extract,
    inject,
    setup_tracing,
    span,
    traced,
)
from aegis.obs._tracing_settings import TracingSettings

if TYPE_CHECKING:
    from aegis.obs._httpx import instrument_httpx

# Names whose modules import an optional library: loaded on first use (PEP 562).
__getattr__ = lazy_getattr(
    __name__, {"instrument_httpx": "aegis.obs._httpx"}, extras={"httpx": "aegis-obs[http]"}
)

__all__ = [
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

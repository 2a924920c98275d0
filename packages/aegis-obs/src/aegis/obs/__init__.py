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

if TYPE_CHECKING:
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
    from aegis.obs._httpx import instrument_httpx
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

# Every name is imported on first use (PEP 562), so that `import aegis.obs` costs almost
# nothing: tracing settings build pydantic models, health checks load masking, and
# instrument_httpx needs the http extra (benchmarks/import_time.py).
_LAZY = {
    "Attributes": "aegis.obs._tracing",
    "CheckResult": "aegis.obs._health",
    "DEFAULT_EXCLUDED_PATHS": "aegis.obs._asgi",
    "DEFAULT_SIZE_BUCKETS": "aegis.obs._asgi",
    "FunctionDecorator": "aegis.obs._metrics",
    "GaugeMode": "aegis.obs._metrics",
    "HEALTH_JSON": "aegis.obs._health",
    "HealthCheckError": "aegis.obs._health",
    "HealthCheckFunction": "aegis.obs._health",
    "HealthRegistry": "aegis.obs._health",
    "HealthReport": "aegis.obs._health",
    "HealthStatus": "aegis.obs._health",
    "MULTIPROCESS_DIR_VARIABLE": "aegis.obs._exposition",
    "MetricsEndpoint": "aegis.obs._exposition",
    "ObservabilityMiddleware": "aegis.obs._asgi",
    "TracingSettings": "aegis.obs._tracing_settings",
    "UNMATCHED_ROUTE": "aegis.obs._asgi",
    "aggregate": "aegis.obs._health",
    "counted": "aegis.obs._metrics",
    "counter": "aegis.obs._metrics",
    "current_trace_ids": "aegis.obs._tracing",
    "disk_space_check": "aegis.obs._health_checks",
    "extract": "aegis.obs._tracing",
    "gauge": "aegis.obs._metrics",
    "health_routes": "aegis.obs._health_asgi",
    "histogram": "aegis.obs._metrics",
    "http_check": "aegis.obs._health_checks",
    "in_progress": "aegis.obs._metrics",
    "inject": "aegis.obs._tracing",
    "instrument_engine": "aegis.obs._sqlalchemy",
    "instrument_httpx": "aegis.obs._httpx",
    "kafka_check": "aegis.obs._health_checks",
    "metrics_route": "aegis.obs._exposition",
    "redis_check": "aegis.obs._health_checks",
    "setup_tracing": "aegis.obs._tracing",
    "span": "aegis.obs._tracing",
    "sqlalchemy_check": "aegis.obs._health_checks",
    "statement_operation": "aegis.obs._sqlalchemy",
    "summary": "aegis.obs._metrics",
    "timed": "aegis.obs._metrics",
    "traced": "aegis.obs._tracing",
}

__getattr__ = lazy_getattr(__name__, _LAZY, extras={"httpx": "aegis-obs[http]"})

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

"""aegis.log: one JSON line per event, whichever API wrote it, with request context and masking.

``configure_logging(LogSettings(...))`` once at start-up; ``get_logger(__name__)`` anywhere.
Lines written through stdlib ``logging`` (every other aegis package, uvicorn, SQLAlchemy) come
out the same way. Sentry is behind the ``sentry`` extra, OpenTelemetry ids behind ``otel``.
"""

from typing import TYPE_CHECKING

from aegis.core.utils.lazy import lazy_getattr
from aegis.log.__about__ import __version__
from aegis.log._configure import configure_logging, set_level, shutdown_logging
from aegis.log._context import (
    bind_context,
    bound_context,
    clear_context,
    get_context,
    unbind_context,
)
from aegis.log._logger import AegisLogger, get_logger
from aegis.log._outputs import ConsoleOutput, StreamOutput
from aegis.log._pipeline import LogEntry, LogOutput
from aegis.log._stdlib import AegisHandler
from aegis.log._testing import capture_logs, configured_logging

if TYPE_CHECKING:
    from aegis.log._asgi import RequestLoggingMiddleware
    from aegis.log._elasticsearch import ElasticsearchOutput, ShipperStats
    from aegis.log._file import RotatingFileOutput
    from aegis.log._sentry import SentryOutput, configure_sentry
    from aegis.log._settings import (
        ConsoleSettings,
        ElasticsearchSettings,
        FileSettings,
        LogSettings,
    )

# Imported on first use (PEP 562), so that `import aegis.log; get_logger()` costs structlog and
# orjson: the settings models (pydantic), the outputs a configuration may name, Sentry and the
# ASGI middleware load when a caller first reads them (benchmarks/import_time.py).
_LAZY = {
    "ConsoleSettings": "aegis.log._settings",
    "ElasticsearchOutput": "aegis.log._elasticsearch",
    "ElasticsearchSettings": "aegis.log._settings",
    "FileSettings": "aegis.log._settings",
    "LogSettings": "aegis.log._settings",
    "RequestLoggingMiddleware": "aegis.log._asgi",
    "RotatingFileOutput": "aegis.log._file",
    "SentryOutput": "aegis.log._sentry",
    "ShipperStats": "aegis.log._elasticsearch",
    "configure_sentry": "aegis.log._sentry",
}

__getattr__ = lazy_getattr(__name__, _LAZY)

__all__ = [
    "AegisHandler",
    "AegisLogger",
    "ConsoleOutput",
    "ConsoleSettings",
    "ElasticsearchOutput",
    "ElasticsearchSettings",
    "FileSettings",
    "LogEntry",
    "LogOutput",
    "LogSettings",
    "RequestLoggingMiddleware",
    "RotatingFileOutput",
    "SentryOutput",
    "ShipperStats",
    "StreamOutput",
    "__version__",
    "bind_context",
    "bound_context",
    "capture_logs",
    "clear_context",
    "configure_logging",
    "configure_sentry",
    "configured_logging",
    "get_context",
    "get_logger",
    "set_level",
    "shutdown_logging",
    "unbind_context",
]

"""aegis.service: one call wires the aegis packages into a Starlette or FastAPI service.

:func:`bootstrap` takes an application and :class:`ServiceSettings` and installs logging,
metrics, tracing, error answers, authentication, rate limiting, health checks and one
lifespan, in the one correct order; the :class:`Service` it returns holds what it built.

Example:
    >>> app = FastAPI()
    >>> service = bootstrap(app, ServiceSettings.load(name="orders"))
"""

from aegis.service.__about__ import __version__
from aegis.service._bootstrap import bootstrap
from aegis.service._service import Service
from aegis.service._settings import (
    DEFAULT_QUIET_PATHS,
    AuthSettings,
    PagesSettings,
    RateLimitSettings,
    ServiceSettings,
)
from aegis.service._uvicorn import adopt_uvicorn_logging

__all__ = [
    "DEFAULT_QUIET_PATHS",
    "AuthSettings",
    "PagesSettings",
    "RateLimitSettings",
    "Service",
    "ServiceSettings",
    "__version__",
    "adopt_uvicorn_logging",
    "bootstrap",
]

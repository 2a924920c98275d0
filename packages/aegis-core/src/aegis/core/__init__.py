"""aegis.core: the errors, models, request context and utilities every aegis package stands on.

The package itself needs only pydantic. Heavier helpers sit behind extras and are imported from
their own modules: ``aegis.core.web`` (``web``), ``aegis.core.utils.security`` (``crypto``),
``aegis.core.utils.files`` (``files``) and ``aegis.core.utils.validation`` (``validation``).
"""

from aegis.core.__about__ import __version__
from aegis.core.context import current_context, request_context, with_current_context
from aegis.core.errors import (
    ERROR_CODES,
    AegisError,
    ConfigurationError,
    ConflictError,
    DatabaseError,
    DatabaseUnavailableError,
    ExternalServiceError,
    FieldError,
    ForbiddenError,
    IntegrityViolationError,
    InvalidInputError,
    NotFoundError,
    RateLimitedError,
    UnauthorizedError,
    register_error_code,
)

__all__ = [
    "ERROR_CODES",
    "AegisError",
    "ConfigurationError",
    "ConflictError",
    "DatabaseError",
    "DatabaseUnavailableError",
    "ExternalServiceError",
    "FieldError",
    "ForbiddenError",
    "IntegrityViolationError",
    "InvalidInputError",
    "NotFoundError",
    "RateLimitedError",
    "UnauthorizedError",
    "__version__",
    "current_context",
    "register_error_code",
    "request_context",
    "with_current_context",
]

"""The aegis error model: one exception hierarchy with stable codes and RFC 9457 problem documents.

Every public error any aegis package raises is an :class:`AegisError`. Its ``code`` is a stable
string that clients may switch on; :data:`ERROR_CODES` maps every code to its HTTP status and
title, and :meth:`AegisError.to_problem` renders the RFC 9457 ``application/problem+json`` body.
This module is framework-free; the Starlette/FastAPI handlers live in :mod:`aegis.core.web`.

Example:
    >>> raise NotFoundError("user 42 does not exist", details={"user_id": 42})
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar

PROBLEM_CONTENT_TYPE = "application/problem+json"
"""Media type of an RFC 9457 problem document."""

DEFAULT_PROBLEM_TYPE_BASE = "urn:aegis:problem:"
"""Prefix of the ``type`` member: ``urn:aegis:problem:not-found``. Problem types are identifiers;
RFC 9457 section 3.1.1 does not require them to resolve. Services may use an https base instead."""


@dataclass(frozen=True)
class ErrorCode:
    """A stable error code with the HTTP status and short title it answers with."""

    code: str
    status: int
    title: str


_CODES: dict[str, ErrorCode] = {
    entry.code: entry
    for entry in [
        ErrorCode("INTERNAL_ERROR", 500, "Internal server error"),
        ErrorCode("BAD_REQUEST", 400, "Bad request"),
        ErrorCode("VALIDATION_ERROR", 422, "Validation failed"),
        ErrorCode("NOT_FOUND", 404, "Not found"),
        ErrorCode("METHOD_NOT_ALLOWED", 405, "Method not allowed"),
        ErrorCode("CONFLICT", 409, "Conflict"),
        ErrorCode("PAYLOAD_TOO_LARGE", 413, "Payload too large"),
        ErrorCode("UNSUPPORTED_MEDIA_TYPE", 415, "Unsupported media type"),
        ErrorCode("UNAUTHORIZED", 401, "Unauthorized"),
        ErrorCode("FORBIDDEN", 403, "Forbidden"),
        ErrorCode("RATE_LIMITED", 429, "Too many requests"),
        ErrorCode("DB_ERROR", 500, "Database error"),
        ErrorCode("DB_UNAVAILABLE", 503, "Database unavailable"),
        ErrorCode("DB_INTEGRITY", 409, "Integrity constraint violated"),
        ErrorCode("DB_CONFLICT", 409, "Concurrent update conflict"),
        ErrorCode("EXTERNAL_SERVICE_ERROR", 502, "Upstream service error"),
        ErrorCode("EXTERNAL_SERVICE_TIMEOUT", 504, "Upstream service timeout"),
        ErrorCode("CONFIGURATION_ERROR", 500, "Configuration error"),
        ErrorCode("SERVICE_UNAVAILABLE", 503, "Service unavailable"),
    ]
}

ERROR_CODES: Mapping[str, ErrorCode] = MappingProxyType(_CODES)
"""Every known code (read-only view): the one table from code to HTTP status and title."""

_UPPER_SNAKE_CASE = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*")
# Members to_problem sets from the error and the request; a detail never stands in for them.
_STANDARD_MEMBERS = frozenset(
    {"type", "title", "status", "detail", "code", "instance", "request_id"}
)


def register_error_code(code: str, status: int, title: str) -> ErrorCode:
    """Add a service's own error code to :data:`ERROR_CODES`.

    Registering the same code again with the same status and title is a no-op (module reloads,
    tests); a different status or title for a known code is a mistake and raises.

    Raises:
        ValueError: ``code`` is not UPPER_SNAKE_CASE, ``status`` is not an HTTP error status,
            or the code is already registered differently.
    """
    if not _UPPER_SNAKE_CASE.fullmatch(code):
        raise ValueError(f"error code {code!r} must be UPPER_SNAKE_CASE")
    if not 400 <= status <= 599:
        raise ValueError(f"error code {code!r}: status {status} is not an HTTP error status")
    entry = ErrorCode(code, status, title)
    known = _CODES.setdefault(code, entry)
    if known != entry:
        raise ValueError(f"error code {code!r} is already registered as {known}")
    return entry


def status_for(code: str) -> int:
    """Return the HTTP status of ``code``; an unknown code answers 500."""
    entry = _CODES.get(code)
    return entry.status if entry is not None else 500


@dataclass(frozen=True)
class FieldError:
    """One invalid field: its dotted location (``address.zip``), what is wrong, and the rule."""

    field: str
    message: str
    type: str

    def to_dict(self) -> dict[str, str]:
        """Return the ``{field, message, type}`` member of a problem's ``errors`` list."""
        return {"field": self.field, "message": self.message, "type": self.type}


class AegisError(Exception):
    """Base of every aegis error: a message, a stable ``code``, an HTTP ``status`` and details.

    Declare your own error as a subclass that sets ``code`` and, optionally, ``status`` and
    ``title`` as class attributes (``default_code`` is the older spelling of ``code`` and still
    works):

    >>> class OrderClosedError(ConflictError):
    ...     code = "ORDER_CLOSED"
    ...     title = "Order closed"
    >>> OrderClosedError("order 7 is closed").status
    409

    Without ``status`` the error answers the status registered for its code
    (:func:`register_error_code`), else the status of the nearest base class (``ConflictError``:
    409; ``AegisError``: 500).

    Args:
        message: what went wrong, for a human (it becomes the problem's ``detail``).
        code: stable code; defaults to the class's ``code``.
        status: HTTP status; defaults as described above.
        details: extra JSON-safe members for the problem document (never secrets).

    .. versionchanged:: 0.1
        ``code``, ``status`` and ``title`` class attributes are honoured; before, a subclass
        setting ``code`` answered 500 ``INTERNAL_ERROR``.
    """

    default_code: ClassVar[str] = "INTERNAL_ERROR"
    code: str = "INTERNAL_ERROR"
    """The stable code (the class's, unless one was passed); ``default_code`` is its old name."""
    status: int
    """The HTTP status this error answers with."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        declared = vars(cls)
        code = declared.get("code", declared.get("default_code"))
        if code is None:
            cls.code = cls.default_code
        elif not isinstance(code, str) or not code:
            raise TypeError(f"{cls.__qualname__}.code must be a non-empty str, not {code!r}")
        elif declared.get("default_code", code) != code:
            raise TypeError(f"{cls.__qualname__} sets both code and default_code, differently")
        else:
            cls.default_code = cls.code = code
        status = declared.get("status")
        if status is not None and (
            not isinstance(status, int) or isinstance(status, bool) or not 400 <= status <= 599
        ):
            raise TypeError(
                f"{cls.__qualname__}.status must be an HTTP error status, not {status!r}"
            )

    @classmethod
    def _default_status(cls, code: str) -> int:
        """The status for ``code`` when none was passed: see the class docstring."""
        entry = _CODES.get(code)
        if code != cls.default_code and entry is not None:
            return entry.status
        for klass in cls.__mro__:
            declared = vars(klass)
            status = declared.get("status")
            if isinstance(status, int):
                return status
            entry = _CODES.get(declared.get("default_code", ""))
            if entry is not None:
                return entry.status
        return 500

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or type(self).default_code
        self.status = status if status is not None else self._default_status(self.code)
        self.details: dict[str, Any] = dict(details or {})

    @property
    def title(self) -> str:
        """Short, stable summary of the code (the problem's ``title``)."""
        entry = _CODES.get(self.code)
        return entry.title if entry is not None else self.code.replace("_", " ").capitalize()

    def to_problem(
        self,
        *,
        instance: str | None = None,
        request_id: str | None = None,
        type_base: str = DEFAULT_PROBLEM_TYPE_BASE,
    ) -> dict[str, Any]:
        """Render this error as an RFC 9457 problem document (a JSON-ready dict).

        ``details`` become extension members; they never overwrite or stand in for the standard
        members (``instance`` and ``request_id`` included, when they are not given).
        """
        problem: dict[str, Any] = {
            "type": problem_type(self.code, type_base),
            "title": self.title,
            "status": self.status,
            "detail": self.message,
            "code": self.code,
        }
        if instance is not None:
            problem["instance"] = instance
        if request_id is not None:
            problem["request_id"] = request_id
        problem.update(
            (name, value) for name, value in self.details.items() if name not in _STANDARD_MEMBERS
        )
        return problem

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, code={self.code!r}, status={self.status})"


def problem_type(code: str, type_base: str = DEFAULT_PROBLEM_TYPE_BASE) -> str:
    """Return the problem ``type`` URI for ``code``: ``NOT_FOUND`` -> ``<base>not-found``."""
    return type_base + code.lower().replace("_", "-")


class InvalidInputError(AegisError):
    """Input broke a rule. Names each field, what is wrong with it, and the rule (HTTP 422).

    Pass ``field`` and ``rule`` for one field, or ``errors`` for several.

    Example:
        >>> InvalidInputError("must be at most 100", field="size", rule="max")
    """

    default_code = "VALIDATION_ERROR"

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        rule: str = "invalid",
        errors: Sequence[FieldError] = (),
        code: str | None = None,
        status: int | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message, code=code, status=status, details=details)
        self.errors = list(errors)
        if field is not None:
            self.errors.insert(0, FieldError(field, message, rule))
        self.field = field if field is not None else (self.errors[0].field if self.errors else None)

    def to_problem(
        self,
        *,
        instance: str | None = None,
        request_id: str | None = None,
        type_base: str = DEFAULT_PROBLEM_TYPE_BASE,
    ) -> dict[str, Any]:
        """Render as a problem document whose ``errors`` lists every invalid field."""
        problem = super().to_problem(instance=instance, request_id=request_id, type_base=type_base)
        problem["errors"] = [error.to_dict() for error in self.errors]
        return problem


class NotFoundError(AegisError):
    """The requested resource does not exist (HTTP 404)."""

    default_code = "NOT_FOUND"


class ConflictError(AegisError):
    """The request conflicts with the current state of a resource (HTTP 409)."""

    default_code = "CONFLICT"


class UnauthorizedError(AegisError):
    """The caller is not authenticated (HTTP 401); auth codes refine why."""

    default_code = "UNAUTHORIZED"


class ForbiddenError(AegisError):
    """The caller is authenticated but not allowed to do this (HTTP 403)."""

    default_code = "FORBIDDEN"


class RateLimitedError(AegisError):
    """Too many requests (HTTP 429); ``retry_after`` seconds, when known, go into the problem."""

    default_code = "RATE_LIMITED"

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        code: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        extra = dict(details or {})
        if retry_after is not None:
            extra["retry_after"] = retry_after
        super().__init__(message, code=code, details=extra)
        self.retry_after = retry_after


class DatabaseError(AegisError):
    """A database operation failed (HTTP 500)."""

    default_code = "DB_ERROR"


class DatabaseUnavailableError(DatabaseError):
    """The database cannot be reached or refuses connections (HTTP 503)."""

    default_code = "DB_UNAVAILABLE"


class IntegrityViolationError(DatabaseError):
    """A write broke a constraint: unique, foreign key, check, not null (HTTP 409)."""

    default_code = "DB_INTEGRITY"


class ExternalServiceError(AegisError):
    """A service this one depends on failed or timed out (HTTP 502, or 504 for timeouts)."""

    default_code = "EXTERNAL_SERVICE_ERROR"


class ConfigurationError(AegisError):
    """The service is configured wrongly: a missing or invalid setting (HTTP 500)."""

    default_code = "CONFIGURATION_ERROR"


__all__ = [
    "DEFAULT_PROBLEM_TYPE_BASE",
    "ERROR_CODES",
    "PROBLEM_CONTENT_TYPE",
    "AegisError",
    "ConfigurationError",
    "ConflictError",
    "DatabaseError",
    "DatabaseUnavailableError",
    "ErrorCode",
    "ExternalServiceError",
    "FieldError",
    "ForbiddenError",
    "IntegrityViolationError",
    "InvalidInputError",
    "NotFoundError",
    "RateLimitedError",
    "UnauthorizedError",
    "problem_type",
    "register_error_code",
    "status_for",
]

"""Turn pydantic's validation errors into one ConfigurationError a user can act on.

The message names environment variables, not pydantic locations, and never holds a value:
missing settings are listed as the variables to set; a wrong value gets its variable, the
type of what was given and the type expected.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

from aegis.config._fields import (
    FieldPath,
    describe_type,
    model_class,
    required_leaves,
    resolve_path,
    variable_name,
)
from aegis.core.errors import ConfigurationError

SourceOf = Callable[[FieldPath], str | None]
"""Answers where the value at a field path came from (``file .env``), when known."""


def validation_error(
    settings_cls: type[BaseSettings],
    exc: ValidationError,
    *,
    environment: str | None = None,
    source_of: SourceOf | None = None,
) -> ConfigurationError:
    """Return one :class:`ConfigurationError` for every problem in a settings ValidationError.

    Raise it ``from None``: the ValidationError quotes input values, which may be secrets.

    Example message::

        UserServiceSettings (environment: production) cannot be loaded.
        Missing required settings; set these environment variables:
          - USERS_DATABASE__URL
        Invalid values:
          - USERS_PORT (from env var USERS_PORT): expected int, got str:
            Input should be a valid integer, unable to parse string as an integer
    """
    missing: list[str] = []
    invalid: list[dict[str, str]] = []
    for error in exc.errors(include_url=False, include_input=True, include_context=False):
        path, suffix, field = resolve_path(settings_cls, error["loc"])
        if error["type"] == "missing" and not suffix:
            for leaf in _missing_leaves(field, path):
                name = variable_name(settings_cls, leaf)
                if name not in missing:
                    missing.append(name)
            continue
        variable = variable_name(settings_cls, path) + suffix if path else "(settings)"
        if any(entry["variable"] == variable for entry in invalid):
            continue  # a union reports each member's failure; the first one says enough
        invalid.append(_invalid_entry(field, path, variable, error, source_of))
    where = f" (environment: {environment})" if environment else ""
    lines = [f"{settings_cls.__name__}{where} cannot be loaded."]
    if missing:
        lines.append("Missing required settings; set these environment variables:")
        lines.extend(f"  - {name}" for name in missing)
    if invalid:
        lines.append("Invalid values:")
        for entry in invalid:
            source = f" (from {entry['source']})" if entry.get("source") else ""
            lines.append(
                f"  - {entry['variable']}{source}: expected {entry['expected']},"
                f" got {entry['got']}: {entry['reason']}"
            )
    details: dict[str, Any] = {"settings": settings_cls.__name__, "missing": missing}
    details["invalid"] = invalid
    if environment:
        details["environment"] = environment
    return ConfigurationError("\n".join(lines), details=details)


def _missing_leaves(field: FieldInfo | None, path: FieldPath) -> list[FieldPath]:
    nested = model_class(field.annotation) if field is not None else None
    return list(required_leaves(nested, path)) if nested is not None else [path]


def _invalid_entry(
    field: FieldInfo | None,
    path: FieldPath,
    variable: str,
    error: Any,
    source_of: SourceOf | None,
) -> dict[str, str]:
    entry = {
        "variable": variable,
        "expected": describe_type(field.annotation) if field is not None else "a valid value",
        "got": type(error.get("input")).__name__,
        "reason": str(error["msg"]),
    }
    source = source_of(path) if source_of is not None and path else None
    if source:
        entry["source"] = source
    return entry

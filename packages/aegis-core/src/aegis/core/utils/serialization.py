"""Model <-> dict <-> JSON <-> ORM conversion.

Conversions raise :class:`~aegis.core.errors.InvalidInputError` listing every invalid field as
a dotted path (``items.0.email``; ``$`` is the document itself), so callers never see pydantic's
``ValidationError``. Redaction of secrets before they are logged is :mod:`aegis.core.utils.masking`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ValidationError

from aegis.core.errors import FieldError, InvalidInputError

ModelT = TypeVar("ModelT", bound=BaseModel)
_T = TypeVar("_T")

_MAX_LISTED_ERRORS = 5


def to_dict(
    model: BaseModel,
    *,
    mode: Literal["python", "json"] = "python",
    by_alias: bool = False,
    exclude_none: bool = False,
    exclude_unset: bool = False,
) -> dict[str, Any]:
    """Return the model's fields as a dict; ``mode="json"`` gives only JSON types (str dates)."""
    return model.model_dump(
        mode=mode, by_alias=by_alias, exclude_none=exclude_none, exclude_unset=exclude_unset
    )


def to_json(
    model: BaseModel,
    *,
    indent: int | None = None,
    by_alias: bool = False,
    exclude_none: bool = False,
) -> str:
    """Return the model as JSON text (compact unless ``indent`` is given)."""
    return model.model_dump_json(indent=indent, by_alias=by_alias, exclude_none=exclude_none)


def from_dict(model_type: type[ModelT], data: Mapping[str, Any]) -> ModelT:
    """Validate ``data`` into a ``model_type``.

    Raises:
        InvalidInputError: a field is missing or invalid; ``errors`` names each one.
    """
    try:
        return model_type.model_validate(data)
    except ValidationError as exc:
        raise as_invalid_input(exc) from exc


def from_json(model_type: type[ModelT], text: str | bytes) -> ModelT:
    """Parse JSON text into a ``model_type``.

    Raises:
        InvalidInputError: the text is not JSON (field ``$``, rule ``json_invalid``) or a field
            is missing or invalid; ``errors`` names each one.

    Example:
        >>> from_json(UserRef, '{"id": "u-1", "username": "kim"}').username
        'kim'
    """
    try:
        return model_type.model_validate_json(text)
    except ValidationError as exc:
        raise as_invalid_input(exc) from exc


def from_orm(model_type: type[ModelT], obj: object) -> ModelT:
    """Build a ``model_type`` from the attributes of ``obj`` (an ORM row or any object).

    Raises:
        InvalidInputError: an attribute is missing or invalid; ``errors`` names each one.
    """
    try:
        return model_type.model_validate(obj, from_attributes=True)
    except ValidationError as exc:
        raise as_invalid_input(exc) from exc


def as_invalid_input(error: ValidationError) -> InvalidInputError:
    """Turn a pydantic ``ValidationError`` into an ``InvalidInputError`` with one entry a field.

    Input values are left out of the message: they may be secrets.
    """
    field_errors = [
        FieldError(
            field=".".join(str(part) for part in item["loc"]) or "$",
            message=item["msg"],
            type=item["type"],
        )
        for item in error.errors(include_url=False, include_input=False)
    ]
    listed = "; ".join(
        f"{item.field}: {item.message}" for item in field_errors[:_MAX_LISTED_ERRORS]
    )
    more = len(field_errors) - _MAX_LISTED_ERRORS
    suffix = f"; and {more} more" if more > 0 else ""
    return InvalidInputError(f"invalid {error.title}: {listed}{suffix}", errors=field_errors)


__all__ = [
    "as_invalid_input",
    "from_dict",
    "from_json",
    "from_orm",
    "to_dict",
    "to_json",
]

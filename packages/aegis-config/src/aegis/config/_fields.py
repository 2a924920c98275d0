"""Field paths of a settings class and the environment variable that sets each of them."""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Iterator
from typing import Any, Union

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

FieldPath = tuple[str, ...]
"""Field names from the settings class down to one value: ``("database", "url")``."""


def model_class(annotation: Any) -> type[BaseModel] | None:
    """Return the pydantic model an annotation holds (``Db``, ``Db | None``), or None."""
    if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (Union, types.UnionType):
        models = [m for m in map(model_class, typing.get_args(annotation)) if m is not None]
        if len(models) == 1:
            return models[0]
    return None


def field_keys(name: str, field: FieldInfo) -> list[str]:
    """Return the keys a source may use for a field: its name and its string alias."""
    alias = field.validation_alias if isinstance(field.validation_alias, str) else None
    return [name, alias] if alias and alias != name else [name]


def variable_name(settings_cls: type[BaseSettings], path: FieldPath) -> str:
    """Return the environment variable that sets the value at ``path``.

    ``env_prefix`` goes before the top-level name (not before an alias, as in
    pydantic-settings) and ``env_nested_delimiter`` joins the nested names:
    ``USERS_DATABASE__URL``. Without a delimiter only the top-level variable (JSON) exists.
    """
    config = settings_cls.model_config
    prefix = config.get("env_prefix") or ""
    delimiter = config.get("env_nested_delimiter")
    parts: list[str] = []
    model: type[BaseModel] | None = settings_cls
    for depth, name in enumerate(path if delimiter else path[:1]):
        field = model.model_fields.get(name) if model is not None else None
        keys = field_keys(name, field) if field is not None else [name]
        parts.append(keys[-1] if len(keys) > 1 else (prefix if depth == 0 else "") + name)
        model = model_class(field.annotation) if field is not None else None
    joined = (delimiter or "").join(parts)
    return joined if config.get("case_sensitive") else joined.upper()


def required_leaves(model: type[BaseModel], path: FieldPath) -> Iterator[FieldPath]:
    """Yield the path of every required value under a required model field.

    A missing nested model is reported as the variables its required fields need, since
    those are what the user sets (``USERS_DATABASE__URL``, not ``USERS_DATABASE``).
    """
    found = False
    for name, field in model.model_fields.items():
        if not field.is_required():
            continue
        found = True
        nested = model_class(field.annotation)
        if nested is None:
            yield (*path, name)
        else:
            yield from required_leaves(nested, (*path, name))
    if not found:
        yield path


def field_paths(
    model: type[BaseModel], path: FieldPath = ()
) -> Iterator[tuple[FieldPath, FieldInfo]]:
    """Yield every field of a model class and of its nested model classes, depth first."""
    for name, field in model.model_fields.items():
        yield (*path, name), field
        nested = model_class(field.annotation)
        if nested is not None:
            yield from field_paths(nested, (*path, name))


def describe_type(annotation: Any) -> str:
    """Return a short, readable name for an annotation: ``int``, ``list[str]``, ``Db | None``."""
    if inspect.isclass(annotation) and not typing.get_args(annotation):
        return annotation.__name__
    return str(annotation).replace("typing.", "").replace("NoneType", "None")


def resolve_path(
    settings_cls: type[BaseModel], loc: tuple[int | str, ...]
) -> tuple[FieldPath, str, FieldInfo | None]:
    """Split a pydantic error location into field path, list-item suffix and the field.

    Union member tags in the location (``'int'``, ``'function-after[...]'``) are skipped;
    ``("hosts", 1)`` becomes ``(("hosts",), "[1]", <hosts' FieldInfo>)``. A model-level
    error has the empty path and no field.
    """
    path: list[str] = []
    suffix = ""
    field: FieldInfo | None = None
    model: type[BaseModel] | None = settings_cls
    for item in loc:
        if isinstance(item, int):
            suffix += f"[{item}]"
        elif model is not None and not suffix:
            # pydantic locates an aliased field by its alias
            names = {key: n for n, f in model.model_fields.items() for key in field_keys(n, f)}
            if item in names:
                path.append(names[item])
                field = model.model_fields[names[item]]
                model = model_class(field.annotation)
    return tuple(path), suffix, field


def iter_values(
    model: BaseModel, path: FieldPath = ()
) -> Iterator[tuple[FieldPath, FieldInfo, Any]]:
    """Yield the path, field and value of every leaf of a model instance, depth first.

    A nested model value is entered, not yielded; lists and dicts are leaves.
    """
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            yield from iter_values(value, (*path, name))
        else:
            yield (*path, name), field, value

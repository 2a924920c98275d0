"""Cache keys for decorated calls, stable across processes and restarts.

A key does not depend on how the arguments were passed: positionally, by keyword, in any
order, or left to their defaults.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import inspect
import json
import string
from collections.abc import Callable, Mapping
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from pydantic import BaseModel

from aegis.cache._errors import CacheKeyError

_SELF_NAMES = frozenset({"self", "cls"})
_SCALARS = (str, int, float, bool, type(None))
_AS_TEXT = (UUID, datetime, date, time, timedelta, Decimal)


def canonical(value: Any, where: str) -> Any:  # noqa: PLR0911 - one return per kind of value
    """Return a JSON-ready form of ``value`` that is equal for equal values in any process.

    Raises:
        CacheKeyError: ``value`` (at ``where``) has no stable value-based form.
    """
    if isinstance(value, _SCALARS):
        return value
    cache_key = getattr(value, "__cache_key__", None)
    if cache_key is not None and callable(cache_key):
        return [_type_name(value), canonical(cache_key(), where)]
    if isinstance(value, BaseModel):
        return [_type_name(value), value.model_dump(mode="json")]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {
            f.name: canonical(getattr(value, f.name), where) for f in dataclasses.fields(value)
        }
        return [_type_name(value), fields]
    if isinstance(value, enum.Enum):
        return [_type_name(value), canonical(value.value, where)]
    if isinstance(value, _AS_TEXT):
        return [_type_name(value), str(value)]
    if isinstance(value, bytes):
        return ["bytes", value.hex()]
    if isinstance(value, list | tuple):
        return [canonical(item, where) for item in value]
    if isinstance(value, Mapping):
        items = [[canonical(k, where), canonical(v, where)] for k, v in value.items()]
        return ["map", sorted(items, key=_dumps)]
    if isinstance(value, set | frozenset):
        return ["set", sorted((canonical(item, where) for item in value), key=_dumps)]
    raise CacheKeyError(
        f"argument {where!r} of type {type(value).__qualname__} cannot be part of a cache key: "
        "its value has no stable form; pass key= to @cached or give the type a "
        "__cache_key__() method"
    )


def _type_name(value: object) -> str:
    kind = type(value)
    return f"{kind.__module__}.{kind.__qualname__}"


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def function_id(func: Callable[..., Any]) -> str:
    """``module.QualName`` of ``func``: the part of its keys that names it."""
    return f"{func.__module__}.{func.__qualname__}"


class KeyBuilder:
    """Builds the keys of one decorated function.

    The default key is ``<module>.<qualname>:<digest>`` where the digest is a BLAKE2b
    hash of the bound, defaults-applied, canonical arguments. ``self``/``cls`` are left out (a
    method's entries are shared by all instances) unless the object has ``__cache_key__()``.
    A ``template`` such as ``"user:{user_id}"`` is formatted with the bound arguments instead;
    a callable ``template`` receives the call's arguments and returns the key.
    """

    def __init__(
        self,
        func: Callable[..., Any],
        template: str | Callable[..., str] | None = None,
    ) -> None:
        self._signature = inspect.signature(func)
        parameters = list(self._signature.parameters)
        kinds = {p.kind for p in self._signature.parameters.values()}
        # Positional-or-keyword parameters only: a call passing all of them positionally can
        # skip Signature.bind, the costliest step of building a key.
        self._names = (
            tuple(parameters) if kinds <= {inspect.Parameter.POSITIONAL_OR_KEYWORD} else None
        )
        self._skip_first = bool(parameters) and parameters[0] in _SELF_NAMES
        self._first = parameters[0] if self._skip_first else ""
        self.prefix = f"{function_id(func)}:"
        self.templated = template is not None
        self._template = template
        if isinstance(template, str):
            # Fail at decoration time, not on the first call, when a field is unknown.
            names = {
                field.split(".")[0].split("[")[0]
                for _, field, _, _ in string.Formatter().parse(template)
                if field
            }
            unknown = names - set(parameters)
            if unknown:
                raise CacheKeyError(
                    f"key template {template!r} of {function_id(func)} names "
                    f"{', '.join(sorted(unknown))}, which are not parameters"
                )

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """The call's arguments by parameter name, defaults applied."""
        names = self._names
        if names is not None and not kwargs and len(args) == len(names):
            return dict(zip(names, args, strict=True))
        bound = self._signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return bound.arguments

    def __call__(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        """Return the key (without the cache's namespace) of the call ``func(*args, **kwargs)``."""
        template = self._template
        if template is not None and not isinstance(template, str):
            return template(*args, **kwargs)
        arguments = self.bind(args, kwargs)
        if template is not None:
            return template.format(**arguments)
        parts: dict[str, Any] = {}
        for name, value in arguments.items():
            if name == self._first:
                if getattr(value, "__cache_key__", None) is not None:
                    parts[name] = canonical(value, name)
                continue
            parts[name] = canonical(value, name)
        digest = hashlib.blake2b(_dumps(parts).encode(), digest_size=16).hexdigest()
        return self.prefix + digest

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
from json.encoder import encode_basestring
from typing import Any
from uuid import UUID

from pydantic import BaseModel

from aegis.cache._errors import CacheKeyError

_SELF_NAMES = frozenset({"self", "cls"})
_SCALARS = (str, int, float, bool, type(None))
_AS_TEXT = (UUID, datetime, date, time, timedelta, Decimal)
_NO_DEFAULT = inspect.Parameter.empty
# What json.dumps(..., separators=(",", ":"), sort_keys=True, ensure_ascii=False) does, built once.
_JSON = json.JSONEncoder(separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def canonical(value: Any, where: str) -> Any:  # one return per kind of value
    """Return a JSON-ready form of ``value`` that is equal for equal values in any process.

    Lists and tuples become JSON arrays; every other kind that is not a JSON scalar becomes a
    JSON object naming its kind (``{"t": type, "v": value}``, ``{"bytes": hex}``,
    ``{"map": items}``, ``{"set": items}``), a shape no list can take: a list argument such
    as ``["bytes", "00"]`` never shares a key with the single byte 0x00.

    Raises:
        CacheKeyError: ``value`` (at ``where``) has no stable value-based form.
    """
    if isinstance(value, _SCALARS):
        return value
    cache_key = getattr(value, "__cache_key__", None)
    if cache_key is not None and callable(cache_key):
        return {"t": _type_name(value), "v": canonical(cache_key(), where)}
    if isinstance(value, BaseModel):
        return {"t": _type_name(value), "v": value.model_dump(mode="json")}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {
            f.name: canonical(getattr(value, f.name), where) for f in dataclasses.fields(value)
        }
        return {"t": _type_name(value), "v": fields}
    if isinstance(value, enum.Enum):
        return {"t": _type_name(value), "v": canonical(value.value, where)}
    if isinstance(value, _AS_TEXT):
        return {"t": _type_name(value), "v": str(value)}
    if isinstance(value, bytes):
        return {"bytes": value.hex()}
    if isinstance(value, list | tuple):
        return [canonical(item, where) for item in value]
    if isinstance(value, Mapping):
        items = [[canonical(k, where), canonical(v, where)] for k, v in value.items()]
        return {"map": sorted(items, key=_dumps)}
    if isinstance(value, set | frozenset):
        return {"set": sorted((canonical(item, where) for item in value), key=_dumps)}
    raise CacheKeyError(
        f"argument {where!r} of type {type(value).__qualname__} cannot be part of a cache key: "
        "its value has no stable form; pass key= to @cached or give the type a "
        "__cache_key__() method"
    )


def _type_name(value: object) -> str:
    kind = type(value)
    return f"{kind.__module__}.{kind.__qualname__}"


def _dumps(value: Any) -> str:
    return _JSON.encode(value)


def _simple_json(value: object) -> str | None:
    """The JSON of an int, str, bool or None exactly as :func:`_dumps` writes it; else None."""
    kind = type(value)
    if kind is int:
        return int.__repr__(value)
    if kind is str:
        return encode_basestring(value)  # type: ignore[arg-type] # kind is str
    if value is None:
        return "null"
    if kind is bool:
        return "true" if value else "false"
    return None


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
        self._defaults = tuple(p.default for p in self._signature.parameters.values())
        # For the fast path: each keyed parameter's position and '"name":', in JSON key order.
        self._fields = tuple(
            (parameters.index(name), encode_basestring(name) + ":")
            for name in sorted(parameters[1:] if self._skip_first else parameters)
        )
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
        text = None if template is not None or kwargs else self._simple_text(args)
        if text is not None:
            return self.prefix + hashlib.blake2b(text.encode(), digest_size=16).hexdigest()
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

    def _simple_text(self, args: tuple[Any, ...]) -> str | None:
        """The canonical JSON of positional int/str/bool/None arguments, without binding.

        Most cached calls look like ``load(42)``; building their JSON directly costs a fraction
        of ``Signature.bind`` and ``json.dumps`` and gives the same text. None: another case.
        """
        names = self._names
        if names is None or len(args) > len(names):
            return None
        if self._skip_first and getattr(args[0], "__cache_key__", None) is not None:
            return None
        count = len(args)
        pieces = []
        for index, field in self._fields:
            value = args[index] if index < count else self._defaults[index]
            if value is _NO_DEFAULT:
                return None  # a missing argument: Signature.bind names it
            encoded = _simple_json(value)
            if encoded is None:
                return None
            pieces.append(field + encoded)
        return "{" + ",".join(pieces) + "}"

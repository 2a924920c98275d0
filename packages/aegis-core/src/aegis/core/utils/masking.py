"""Redaction of secrets (by key name, card numbers, URL passwords) before data is logged.

:func:`mask_sensitive` is what aegis-log's processor runs on every event, so this module
imports no pydantic: models and secret types are recognised by their attributes.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Collection, Mapping
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import TYPE_CHECKING, Any, TypeVar, cast, overload
from uuid import UUID

from aegis.core.utils.strings import split_words

if TYPE_CHECKING:
    from pydantic import BaseModel

_T = TypeVar("_T")

DEFAULT_SENSITIVE_KEYS: frozenset[str] = frozenset(
    {
        "password", "passwd", "pwd", "passphrase", "secret", "token", "jwt", "otp",
        "api_key", "access_key", "private_key", "authorization", "cookie", "session_id",
        "credential", "card_number", "credit_card", "pan", "cvv", "cvc", "ssn", "pin",
    }
)  # fmt: skip
"""Key names :func:`mask_sensitive` redacts by default (see it for how names match)."""

_SHORT_KEY_LENGTH = 3
_NAME_CACHE_LIMIT = 4096
_NOT_ALPHANUMERIC = re.compile(r"[\W_]+")
_CARD_CANDIDATE = re.compile(r"(?<![0-9])[2-9](?:[ -]?[0-9]){12,18}(?![0-9])")
_CARD_DIGITS = re.compile(r"(?<![0-9])[2-9][0-9]{12,18}(?![0-9])")
_URL_PASSWORD = re.compile(r"(://[^/\s:@]+):[^/\s@]+@")
_ATOMIC_TYPES = frozenset(
    {int, float, bool, type(None), bytes, complex, Decimal, datetime, date, time, timedelta, UUID}
)
_CYCLE = "<cycle>"
_WALKED_TYPES = (Mapping, list, tuple, set, frozenset)


def _normalize_key(name: str) -> str:
    return _NOT_ALPHANUMERIC.sub("", name.casefold())


class _KeyMatcher:
    """Precompiled key rules: long keys match as substrings, short ones as whole words."""

    __slots__ = ("_cache", "_substrings", "_words")

    def __init__(self, keys: frozenset[str]) -> None:
        normalized = {_normalize_key(key) for key in keys} - {""}
        long_keys = sorted((k for k in normalized if len(k) > _SHORT_KEY_LENGTH), key=len)
        self._substrings = (
            re.compile("|".join(re.escape(key) for key in reversed(long_keys)))
            if long_keys
            else None
        )
        self._words = frozenset(k for k in normalized if len(k) <= _SHORT_KEY_LENGTH)
        self._cache: dict[str, bool] = {}

    def __call__(self, name: str) -> bool:
        known = self._cache.get(name)
        if known is not None:
            return known
        normalized = _normalize_key(name)
        sensitive = bool(self._substrings is not None and self._substrings.search(normalized))
        if not sensitive and self._words:
            sensitive = normalized in self._words or any(
                word.casefold() in self._words for word in split_words(name)
            )
        if len(self._cache) >= _NAME_CACHE_LIMIT:
            self._cache.clear()  # bounded: hostile input must not grow it without end
        self._cache[name] = sensitive
        return sensitive


_DEFAULT_MATCHER = _KeyMatcher(DEFAULT_SENSITIVE_KEYS)


@lru_cache(maxsize=32)
def _matcher_for(keys: frozenset[str]) -> _KeyMatcher:
    return _KeyMatcher(keys)


def _matcher(keys: Collection[str]) -> _KeyMatcher:
    if keys is DEFAULT_SENSITIVE_KEYS:
        return _DEFAULT_MATCHER
    return _matcher_for(keys if isinstance(keys, frozenset) else frozenset(keys))


def is_sensitive_key(name: str, *, keys: Collection[str] = DEFAULT_SENSITIVE_KEYS) -> bool:
    """Whether a key (a field, header or parameter name) names a secret; see :func:`mask_sensitive`.

    Example:
        >>> is_sensitive_key("X-Api-Key"), is_sensitive_key("company")
        (True, False)
    """
    return _matcher(keys)(name)


def _luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = ord(char) - 48
        if position % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2  # noqa: PLR2004 - Luhn doubling
        total += digit
    return total % 10 == 0


def _mask_card(match: re.Match[str], mask: str) -> str:
    found = match.group()
    if _luhn_valid(found.replace(" ", "").replace("-", "")):
        return mask
    # "4111111111111111 22": the spaced candidate ran on; look at the unspaced runs in it.
    return _CARD_DIGITS.sub(lambda run: mask if _luhn_valid(run.group()) else run.group(), found)


def _mask_text(text: str, mask: str) -> str:
    # search before sub: most text holds no card number, and search allocates nothing
    if len(text) >= 13 and _CARD_CANDIDATE.search(text) is not None:  # noqa: PLR2004 - shortest card
        text = _CARD_CANDIDATE.sub(lambda match: _mask_card(match, mask), text)
    if "://" in text:
        text = _URL_PASSWORD.sub(lambda match: f"{match.group(1)}:{mask}@", text)
    return text


@overload
def mask_sensitive(
    data: BaseModel | Mapping[Any, Any],
    *,
    keys: Collection[str] = ...,
    mask: str = ...,
    max_depth: int = ...,
) -> dict[Any, Any]: ...
@overload
def mask_sensitive(
    data: _T, *, keys: Collection[str] = ..., mask: str = ..., max_depth: int = ...
) -> _T: ...
def mask_sensitive(
    data: object,
    *,
    keys: Collection[str] = DEFAULT_SENSITIVE_KEYS,
    mask: str = "***",
    max_depth: int = 64,
) -> object:
    """Return a copy of ``data`` with secrets replaced by ``mask``; ``data`` is not changed.

    Walks dicts (any mapping), lists, tuples (named tuples keep their type), sets, pydantic
    models and dataclasses (both become dicts) at any depth, and:

    * replaces the whole value of every sensitive key. A key is normalized (casefolded, every
      character but letters and digits removed: ``X-Api-Key`` -> ``xapikey``); a configured
      key longer than three characters matches as a substring (``accessToken`` contains
      ``token``), a key of up to three characters must be a whole word of the name
      (``card_pan``, ``userSSN``, not ``company``);
    * replaces pydantic ``SecretStr``/``SecretBytes``/``Secret`` values (any object with a
      ``get_secret_value`` method);
    * in text, replaces card numbers (13-19 digits, optionally split by single spaces or dashes,
      first digit 2-9, Luhn-valid; a leading 0 or 1 is left alone, so epoch-millisecond
      timestamps and most numeric ids survive) and URL passwords (``//user:***@host``).
      Numbers that are not text are left alone.

    A container that contains itself is written as ``"<cycle>"`` where it repeats; below
    ``max_depth`` levels everything is replaced by ``mask``. Pass ``keys`` as a ``frozenset``:
    its compiled form is cached, so a log processor pays for the rules once.

    Example:
        >>> mask_sensitive({"user": "kim", "auth": {"accessToken": "eyJ..."}})
        {'user': 'kim', 'auth': {'accessToken': '***'}}
    """
    return _mask(data, _matcher(keys), mask, set(), max_depth)


# One return per kind of value keeps this hot dispatch flat: it runs for every logged value.
def _mask(  # noqa: PLR0911
    value: Any, matcher: _KeyMatcher, mask: str, ancestors: set[int], depth: int
) -> Any:
    kind = type(value)
    if kind is str:
        return _mask_text(value, mask)
    if kind in _ATOMIC_TYPES:
        return value
    if kind is dict or kind is list:  # the common containers skip the isinstance ladder below
        return _mask_container(value, matcher, mask, ancestors, depth)
    if isinstance(value, str):  # a str subclass (StrEnum): keep the object unless it changes
        masked = _mask_text(value, mask)
        return value if masked == value else masked
    if isinstance(value, type):
        return value  # a class, even a model class, is not data
    if hasattr(value, "get_secret_value"):  # pydantic's Secret types, and wrappers like them
        return mask
    if (
        isinstance(value, _WALKED_TYPES)
        or hasattr(value, "__pydantic_fields__")  # a pydantic model, without importing pydantic
        or dataclasses.is_dataclass(value)
    ):
        return _mask_container(value, matcher, mask, ancestors, depth)
    return value


def _mask_container(  # noqa: PLR0911 - one return per container kind, as in _mask
    value: Any, matcher: _KeyMatcher, mask: str, ancestors: set[int], depth: int
) -> Any:
    if depth <= 0:
        return mask  # what is not looked at cannot be shown
    identity = id(value)
    if identity in ancestors:
        return _CYCLE
    ancestors.add(identity)
    try:
        kind = type(value)
        if kind is dict or isinstance(value, Mapping):
            return _mask_mapping(value, matcher, mask, ancestors, depth)
        if hasattr(value, "__pydantic_fields__"):
            return _mask_mapping(dict(value), matcher, mask, ancestors, depth)
        if dataclasses.is_dataclass(value):
            fields = {field.name: getattr(value, field.name) for field in dataclasses.fields(value)}
            return _mask_mapping(fields, matcher, mask, ancestors, depth)
        if isinstance(value, tuple) and hasattr(value, "_fields"):
            return kind(
                **_mask_mapping(cast("Any", value)._asdict(), matcher, mask, ancestors, depth)
            )
        items = [_mask(item, matcher, mask, ancestors, depth - 1) for item in value]
        return items if kind is list else kind(items)
    finally:
        ancestors.discard(identity)


def _mask_mapping(
    mapping: Mapping[Any, Any], matcher: _KeyMatcher, mask: str, ancestors: set[int], depth: int
) -> dict[Any, Any]:
    return {
        key: (
            mask
            if isinstance(key, str) and matcher(key)
            else _mask(item, matcher, mask, ancestors, depth - 1)
        )
        for key, item in mapping.items()
    }

"""Redaction of secrets (by key name, and inside any text) before data is logged.

:func:`mask_sensitive` is what aegis-log's processor runs on every event, so this module
imports no pydantic: models and secret types are recognised by their attributes. The patterns
looked for inside text live in :mod:`aegis.core.utils._text_masking`.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Collection, Mapping
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from functools import lru_cache
from pathlib import PurePath
from typing import TYPE_CHECKING, Any, TypeVar, cast, overload
from uuid import UUID

from aegis.core.utils._text_masking import PiiKind, TextMasker
from aegis.core.utils.strings import split_words

if TYPE_CHECKING:
    from pydantic import BaseModel

__all__ = ["DEFAULT_SENSITIVE_KEYS", "PiiKind", "is_sensitive_key", "mask_sensitive"]

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
_MEMO_TEXT_LENGTH = 256
_NOT_ALPHANUMERIC = re.compile(r"[\W_]+")
_ATOMIC_TYPES = frozenset(
    {int, float, bool, type(None), complex, Decimal, datetime, date, time, timedelta, UUID}
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


class _Rules:
    """What one ``mask_sensitive`` configuration masks: key names, text, and the mask.

    Short texts and keys repeat (a stack frame's file and function names, a Sentry event's
    field names): their masked forms are remembered, in memos bounded like the key cache.
    """

    __slots__ = ("_keys", "_texts", "is_sensitive", "mask", "mask_text")

    def __init__(self, keys: Collection[str], mask: str, pii: frozenset[str]) -> None:
        self.is_sensitive = _matcher(keys)
        self.mask = mask
        self.mask_text = TextMasker(self.is_sensitive, mask, pii)
        self._texts: dict[str, str] = {}
        self._keys: dict[str, tuple[str, bool]] = {}

    def text(self, text: str) -> str:
        """``text`` masked."""
        if len(text) > _MEMO_TEXT_LENGTH:
            return self.mask_text(text)
        masked = self._texts.get(text)
        if masked is None:
            masked = self.mask_text(text)
            if len(self._texts) >= _NAME_CACHE_LIMIT:
                self._texts.clear()
            self._texts[text] = masked
        return masked

    def key(self, name: str) -> tuple[str, bool]:
        """The masked key and whether it is a sensitive one (a key can hold a secret too)."""
        known = self._keys.get(name)
        if known is None:
            known = (self.text(name), self.is_sensitive(name))
            if len(self._keys) >= _NAME_CACHE_LIMIT:
                self._keys.clear()
            self._keys[name] = known
        return known


_DEFAULT_RULES = _Rules(DEFAULT_SENSITIVE_KEYS, "***", frozenset())


@lru_cache(maxsize=32)
def _rules_for(keys: frozenset[str], mask: str, pii: frozenset[str]) -> _Rules:
    return _Rules(keys, mask, pii)


def _rules(keys: Collection[str], mask: str, pii: Collection[str]) -> _Rules:
    if keys is DEFAULT_SENSITIVE_KEYS and mask == "***" and not pii:
        return _DEFAULT_RULES
    return _rules_for(
        keys if isinstance(keys, frozenset) else frozenset(keys),
        mask,
        pii if isinstance(pii, frozenset) else frozenset(pii),
    )


@overload
def mask_sensitive(
    data: BaseModel | Mapping[Any, Any],
    *,
    keys: Collection[str] = ...,
    mask: str = ...,
    max_depth: int = ...,
    pii: Collection[PiiKind] = ...,
) -> dict[Any, Any]: ...
@overload
def mask_sensitive(
    data: _T,
    *,
    keys: Collection[str] = ...,
    mask: str = ...,
    max_depth: int = ...,
    pii: Collection[PiiKind] = ...,
) -> _T: ...
def mask_sensitive(
    data: object,
    *,
    keys: Collection[str] = DEFAULT_SENSITIVE_KEYS,
    mask: str = "***",
    max_depth: int = 64,
    pii: Collection[PiiKind] = (),
) -> object:
    """Return a copy of ``data`` with secrets replaced by ``mask``; ``data`` is not changed.

    Walks dicts (any mapping), lists, tuples (named tuples keep their type), sets, pydantic
    models and dataclasses (both become dicts) at any depth, and:

    * replaces the whole value of every sensitive key. A key is normalized (casefolded, every
      character but letters and digits removed: ``X-Api-Key`` -> ``xapikey``); a configured
      key longer than three characters matches as a substring (``accessToken`` contains
      ``token``), a key of up to three characters must be a whole word of the name
      (``card_pan``, ``userSSN``, not ``company``). ``bytes`` keys count too;
    * replaces pydantic ``SecretStr``/``SecretBytes``/``Secret`` values (any object with a
      ``get_secret_value`` method);
    * in every text (values, keys, ``bytes`` decoded as UTF-8, and the ``repr`` of other
      objects such as exceptions, which is what a log line shows of them):

      - card numbers: 13-19 digits, optionally split by single spaces or dashes, first digit
        2-9, Luhn-valid (a leading 0 or 1 is left alone, so epoch-millisecond timestamps and
        most numeric ids survive);
      - URL passwords: ``postgresql://app:***@db``, ``redis://:***@cache``;
      - the value after a sensitive key, by the key rules above: ``password=***``,
        ``token: ***``, ``"api_key": "***"``, ``{'secret': '***'}``,
        ``('authorization', 'Bearer ***')``, ``Authorization: Bearer ***`` (the auth scheme
        stays). An unquoted value ends at whitespace, a quote, ``,``, ``;`` or ``&``; a
        quoted one at its closing quote;
      - ``Bearer`` credentials anywhere (``Bearer ***``; "bearer token" is left alone: a
        plain word after ``Bearer`` is taken for prose);
      - the body of PEM private keys;
      - with ``pii``, personal data: ``"email"`` addresses, ``"phone"`` numbers
        (international ``+82 10-1234-5678``, Korean ``010-1234-5678``, North American
        ``(555) 123-4567``) and ``"rrn"``, Korean resident registration numbers
        (``900101-1234567``).

      Text longer than 1 MiB characters is scanned (and kept) up to that length only, and
      says so. Numbers that are not text are left alone.

    A container that contains itself is written as ``"<cycle>"`` where it repeats; below
    ``max_depth`` levels everything is replaced by ``mask``. Masking what is already masked
    changes nothing. Pass ``keys`` as a ``frozenset``: its compiled form is cached, so a log
    processor pays for the rules once.

    Raises:
        ValueError: an unknown kind in ``pii``.

    Example:
        >>> mask_sensitive({"user": "kim", "auth": {"accessToken": "eyJ..."}})
        {'user': 'kim', 'auth': {'accessToken': '***'}}
        >>> mask_sensitive("connect failed: password=hunter2 host=db")
        'connect failed: password=*** host=db'

    .. versionchanged:: 0.2
       Secrets after sensitive keys, ``Bearer`` credentials and private keys inside text,
       ``bytes``, keys and object ``repr`` are masked; ``pii`` was added.
    """
    return _mask(data, _rules(keys, mask, pii), set(), max_depth)


# One return per kind of value keeps this hot dispatch flat: it runs for every logged value.
def _mask(value: Any, rules: _Rules, ancestors: set[int], depth: int) -> Any:
    kind = type(value)
    if kind is str:
        return rules.text(value)
    if kind in _ATOMIC_TYPES:
        return value
    if kind is dict or kind is list:  # the common containers skip the isinstance ladder below
        return _mask_container(value, rules, ancestors, depth)
    if isinstance(value, str):  # a str subclass (StrEnum): keep the object unless it changes
        masked = rules.text(value)
        return value if masked == value else masked
    if isinstance(value, bytes | bytearray):
        return _mask_bytes(value, rules)
    if isinstance(value, type):
        return value  # a class, even a model class, is not data
    try:
        if hasattr(value, "get_secret_value"):  # pydantic's Secret types, and wrappers like them
            return rules.mask
        walked = (
            isinstance(value, _WALKED_TYPES)
            or hasattr(value, "__pydantic_fields__")  # a pydantic model, without pydantic
            or dataclasses.is_dataclass(value)
        )
    except Exception:  # an attribute that raises: judge it by what it shows
        walked = False
    if walked:
        return _mask_container(value, rules, ancestors, depth)
    return _mask_object(value, rules)


def _mask_bytes(value: bytes | bytearray, rules: _Rules) -> bytes | bytearray:
    # surrogateescape: bytes that are not UTF-8 come back exactly as they were
    text = value.decode("utf-8", "surrogateescape")
    masked = rules.text(text)
    return value if masked == text else masked.encode("utf-8", "surrogateescape")


def _mask_object(value: object, rules: _Rules) -> object:
    # A log line or a Sentry event shows an unknown object by its repr (a path by its text):
    # when that shows a secret, the masked text takes the object's place.
    try:
        text = str(value) if isinstance(value, PurePath) else repr(value)
    except Exception:  # a broken __repr__ shows nothing, so it hides nothing
        return value
    if type(text) is not str:
        return value
    masked = rules.text(text)
    return value if masked == text else masked


def _mask_container(value: Any, rules: _Rules, ancestors: set[int], depth: int) -> Any:
    if depth <= 0:
        return rules.mask  # what is not looked at cannot be shown
    identity = id(value)
    if identity in ancestors:
        return _CYCLE
    ancestors.add(identity)
    try:
        kind = type(value)
        if kind is dict or isinstance(value, Mapping):
            return _mask_mapping(value, rules, ancestors, depth)
        if hasattr(value, "__pydantic_fields__"):
            return _mask_mapping(dict(value), rules, ancestors, depth)
        if dataclasses.is_dataclass(value):
            fields = {field.name: getattr(value, field.name) for field in dataclasses.fields(value)}
            return _mask_mapping(fields, rules, ancestors, depth)
        if isinstance(value, tuple) and hasattr(value, "_fields"):
            return kind(**_mask_mapping(cast("Any", value)._asdict(), rules, ancestors, depth))
        items = [_mask(item, rules, ancestors, depth - 1) for item in value]
        return items if kind is list else kind(items)
    except Exception:  # a container that cannot be walked cannot be shown
        return rules.mask
    finally:
        ancestors.discard(identity)


def _mask_mapping(
    mapping: Mapping[Any, Any], rules: _Rules, ancestors: set[int], depth: int
) -> dict[Any, Any]:
    masked: dict[Any, Any] = {}
    for raw, item in mapping.items():
        if type(raw) is str:
            key, sensitive = rules.key(raw)
        elif isinstance(raw, str | bytes | bytearray):
            text = raw.decode("latin-1") if isinstance(raw, bytes | bytearray) else raw
            sensitive = rules.is_sensitive(str(text))
            key = _mask(raw, rules, ancestors, depth - 1)
        else:
            sensitive = False
            key = _mask(raw, rules, ancestors, depth - 1)
        masked[key] = rules.mask if sensitive else _mask(item, rules, ancestors, depth - 1)
    return masked

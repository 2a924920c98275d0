"""Text helpers: Unicode normalization, slugs, safe truncation and identifier case conversion."""

from __future__ import annotations

import re
import unicodedata

from aegis.core.errors import InvalidInputError

_WHITESPACE = re.compile(r"\s+")
_IDENTIFIER_RUNS = re.compile(r"[^\W_]+")
_ZWJ = "\u200d"
_EXTENDERS = (
    range(0xFE00, 0xFE10),  # variation selectors
    range(0x1F3FB, 0x1F400),  # emoji skin-tone modifiers
    range(0xE0020, 0xE0080),  # emoji tag sequences (subdivision flags)
    range(0xE0100, 0xE01F0),  # variation selectors supplement
)
_REGIONAL_INDICATORS = range(0x1F1E6, 0x1F200)
_HANGUL_JAMO_VOWELS_AND_TAILS = range(0x1160, 0x1200)
_HANGUL_JAMO = range(0x1100, 0x1200)
_HANGUL_SYLLABLES = range(0xAC00, 0xD7A4)


def normalize_text(text: str) -> str:
    r"""Return ``text`` in NFKC form with each run of whitespace turned into one space, stripped.

    NFKC folds compatibility forms (full-width letters, ligatures, circled digits) into their
    plain letters, so visually equal input compares equal.

    Example:
        >>> normalize_text("  \uff28\uff49\u3000\n there ")
        'Hi there'
    """
    return _WHITESPACE.sub(" ", unicodedata.normalize("NFKC", text)).strip()


def slugify(text: str, *, max_length: int = 80, separator: str = "-") -> str:
    """Make a lowercase URL slug that keeps the letters of every script.

    Letters, digits and combining marks (of any script: Hangul, kana, Devanagari...) are kept
    after NFKC normalization and lowercasing; every other run of characters becomes one
    ``separator``; separators never lead, trail or repeat. A slug longer than ``max_length``
    is cut there (never between a letter and its combining marks) and trailing separators
    are dropped. ``slugify(slugify(x)) == slugify(x)``.

    Raises:
        InvalidInputError: nothing sluggable is left (field ``text``, rule ``slug_empty``),
            ``max_length`` is below 1 (field ``max_length``, rule ``min``) or ``separator`` is
            not one non-alphanumeric character (field ``separator``).

    Example:
        >>> slugify("Hello, 세계! 2026")
        'hello-세계-2026'
    """
    if max_length < 1:
        raise InvalidInputError(
            f"max_length must be at least 1, got {max_length}", field="max_length", rule="min"
        )
    if len(separator) != 1 or unicodedata.category(separator)[0] in "LMN":
        raise InvalidInputError(
            f"separator must be one character that is not a letter, digit or mark, got "
            f"{separator!r}",
            field="separator",
            rule="separator",
        )
    normalized = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).lower())
    kept: list[str] = []
    pending_separator = False
    for char in normalized:
        category = unicodedata.category(char)[0]
        if category in "LN" or (category == "M" and kept and not pending_separator):
            if pending_separator and kept:
                kept.append(separator)
            pending_separator = False
            kept.append(char)
        else:
            pending_separator = True
    slug = "".join(kept)
    if len(slug) > max_length:
        cut = max_length
        while cut > 0 and not _is_boundary(slug, cut):
            cut -= 1
        if cut == 0:
            raise InvalidInputError(
                f"the first letter of {text[:40]!r} carries more than {max_length} combining "
                "marks, so no slug of that length keeps it whole",
                field="max_length",
                rule="max_length",
            )
        slug = slug[:cut].rstrip(separator)
    if not slug:
        raise InvalidInputError(
            f"{text[:40]!r} has no letters or digits to make a slug from",
            field="text",
            rule="slug_empty",
        )
    return slug


def truncate(text: str, max_length: int, suffix: str = "…") -> str:
    """Shorten ``text`` to at most ``max_length`` characters, ending with ``suffix`` if cut.

    The cut falls on a character-cluster boundary: never before a combining mark, a variation
    selector, a skin-tone modifier or after a zero-width joiner, never inside a flag or a
    Hangul jamo syllable. It is "grapheme-safe-ish": it follows those rules of Unicode UAX #29,
    not all of them. Whitespace before the suffix is dropped.

    Raises:
        InvalidInputError: ``max_length`` is shorter than ``suffix`` (field ``max_length``).

    Example:
        >>> truncate("Hello wonderful world", 12)
        'Hello wonde…'
    """
    if max_length < len(suffix):
        raise InvalidInputError(
            f"max_length {max_length} cannot hold the suffix {suffix!r}",
            field="max_length",
            rule="min",
        )
    if len(text) <= max_length:
        return text
    cut = max_length - len(suffix)
    while cut > 0 and not _is_boundary(text, cut):
        cut -= 1
    return text[:cut].rstrip() + suffix


def _is_boundary(text: str, index: int) -> bool:
    """Whether ``text`` may be cut before ``text[index]`` without splitting a cluster."""
    char, before = text[index], text[index - 1]
    code = ord(char)
    if unicodedata.category(char)[0] == "M" or _ZWJ in (char, before):
        return False
    if any(code in extender for extender in _EXTENDERS):
        return False
    if code in _HANGUL_JAMO_VOWELS_AND_TAILS and (
        ord(before) in _HANGUL_JAMO or ord(before) in _HANGUL_SYLLABLES
    ):
        return False
    if code in _REGIONAL_INDICATORS:
        run = 0
        while index - run - 1 >= 0 and ord(text[index - run - 1]) in _REGIONAL_INDICATORS:
            run += 1
        return run % 2 == 0  # flags are pairs: cut only between pairs
    return True


def split_words(text: str) -> list[str]:
    """Split an identifier or phrase into words at separators and case changes.

    An acronym stays one word until the capital that starts the next word (``HTTPServer`` is
    ``HTTP``, ``Server``); digits stay with the word before them (``utf8Decoder``).

    Example:
        >>> split_words("getHTTPResponse_v2")
        ['get', 'HTTP', 'Response', 'v2']
    """
    words: list[str] = []
    for run in _IDENTIFIER_RUNS.findall(text):
        start = 0
        for index in range(1, len(run)):
            char, before = run[index], run[index - 1]
            if char.isupper() and (
                not before.isupper() or (index + 1 < len(run) and run[index + 1].islower())
            ):
                words.append(run[start:index])
                start = index
        words.append(run[start:])
    return words


def to_snake_case(text: str) -> str:
    """Convert to ``snake_case``: ``HTTPServerError`` -> ``http_server_error``."""
    return "_".join(word.lower() for word in split_words(text))


def to_kebab_case(text: str) -> str:
    """Convert to ``kebab-case``: ``HTTPServerError`` -> ``http-server-error``."""
    return "-".join(word.lower() for word in split_words(text))


def to_pascal_case(text: str) -> str:
    """Convert to ``PascalCase``: ``http_server_error`` -> ``HttpServerError``."""
    return "".join(word[:1].upper() + word[1:].lower() for word in split_words(text))


def to_camel_case(text: str) -> str:
    """Convert to ``camelCase``: ``HTTPServerError`` -> ``httpServerError``."""
    words = split_words(text)
    if not words:
        return ""
    return words[0].lower() + "".join(word[:1].upper() + word[1:].lower() for word in words[1:])

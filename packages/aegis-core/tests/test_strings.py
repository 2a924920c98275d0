import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aegis.core.errors import InvalidInputError
from aegis.core.utils.strings import (
    normalize_text,
    slugify,
    split_words,
    to_camel_case,
    to_kebab_case,
    to_pascal_case,
    to_snake_case,
    truncate,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("  hello   world \n", "hello world"),
        ("\uff28\uff49\u3000there", "Hi there"),  # full-width letters and ideographic space
        ("\ufb01ne", "fine"),  # the "fi" ligature
        ("e\u0301", "\u00e9"),  # composed by NFKC
        ("tab\tand\u00a0nbsp", "tab and nbsp"),
        ("", ""),
    ],
)
def test_normalize_text_applies_nfkc_and_collapses_whitespace(text: str, expected: str) -> None:
    assert normalize_text(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello, World!", "hello-world"),
        ("Hello, 세계! 2026", "hello-세계-2026"),
        ("  --Already--slugged--  ", "already-slugged"),
        ("Ünïcödé Straße", "ünïcödé-straße"),
        ("日本語のテキスト", "日本語のテキスト"),
        ("हिन्दी भाषा", "हिन्दी-भाषा"),
        ("snake_case_name", "snake-case-name"),
        ("\uff26\uff35\uff2c\uff2c width", "full-width"),
    ],
)
def test_slugify_keeps_letters_of_every_script(text: str, expected: str) -> None:
    assert slugify(text) == expected


def test_slugify_uses_the_given_separator() -> None:
    assert slugify("Hello World", separator="_") == "hello_world"


def test_slugify_cuts_to_max_length_without_a_trailing_separator() -> None:
    assert slugify("hello wonderful world", max_length=6) == "hello"
    assert slugify("abcdef", max_length=3) == "abc"


def test_slugify_never_cuts_between_a_letter_and_its_marks() -> None:
    slug = slugify("ab\u0301\u0301cd", max_length=3)
    assert slug == "a"
    with pytest.raises(InvalidInputError) as caught:
        slugify("a" + "\u0301" * 5, max_length=3)
    assert caught.value.field == "max_length"


@pytest.mark.parametrize("text", ["", "   ", "!!! ---", "\u0301\u0301"])
def test_slugify_with_nothing_left_raises_naming_the_rule(text: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        slugify(text)
    assert caught.value.field == "text"
    assert caught.value.errors[0].type == "slug_empty"


@pytest.mark.parametrize(("max_length", "separator"), [(0, "-"), (10, ""), (10, "ab"), (10, "x")])
def test_slugify_refuses_bad_options(max_length: int, separator: str) -> None:
    with pytest.raises(InvalidInputError):
        slugify("hello", max_length=max_length, separator=separator)


def _sluggable(text: str) -> bool:
    try:
        slugify(text)
    except InvalidInputError:
        return False
    return True


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=120), st.integers(min_value=1, max_value=100))
def test_slugs_are_idempotent_and_use_only_their_charset(text: str, max_length: int) -> None:
    try:
        slug = slugify(text, max_length=max_length)
    except InvalidInputError:
        return
    assert slugify(slug, max_length=max_length) == slug
    assert 0 < len(slug) <= max_length
    assert slug == slug.lower()
    assert not slug.startswith("-")
    assert not slug.endswith("-")
    assert "--" not in slug
    assert all(char == "-" or unicodedata.category(char)[0] in "LMN" for char in slug)
    assert unicodedata.category(slug[0])[0] in "LN"


@pytest.mark.parametrize(
    ("text", "max_length", "expected"),
    [
        ("short", 10, "short"),
        ("exactly10!", 10, "exactly10!"),
        ("Hello wonderful world", 12, "Hello wonde…"),
        ("Hello world", 7, "Hello…"),
        ("cafe\u0301 au lait", 5, "caf…"),
        ("cafe\u0301 au lait", 6, "cafe\u0301…"),
        ("e\u0301e\u0301e\u0301", 4, "e\u0301…"),
        ("👍🏽👍🏽", 3, "👍🏽…"),
        ("ok👍🏽 yes", 4, "ok…"),
        ("a👨\u200d👩\u200d👧", 4, "a…"),
        ("🇰🇷🇯🇵🇺🇸", 5, "🇰🇷🇯🇵…"),
        ("🇰🇷🇯🇵", 3, "🇰🇷…"),
        ("🇰🇷🇯🇵", 2, "…"),
        ("\u1112\u1161\u11ab\u1100\u1173\u11af", 5, "\u1112\u1161\u11ab…"),
    ],
)
def test_truncate_cuts_on_character_cluster_boundaries(
    text: str, max_length: int, expected: str
) -> None:
    assert truncate(text, max_length) == expected


def test_truncate_takes_a_custom_suffix() -> None:
    assert truncate("Hello world", 8, suffix="...") == "Hello..."
    assert truncate("Hello world", 5, suffix="") == "Hello"


def test_truncate_refuses_a_length_shorter_than_the_suffix() -> None:
    with pytest.raises(InvalidInputError) as caught:
        truncate("Hello", 2, suffix="...")
    assert caught.value.field == "max_length"


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=60), st.integers(min_value=1, max_value=60))
def test_truncate_keeps_a_prefix_within_the_limit_and_never_splits_a_mark(
    text: str, max_length: int
) -> None:
    result = truncate(text, max_length)
    assert len(result) <= max_length
    if result == text:
        return
    kept = result.removesuffix("…")
    assert text.startswith(kept)
    rest = text[len(kept) :].lstrip()
    if rest and kept:
        assert unicodedata.category(text[len(kept)])[0] != "M"
    assert unicodedata.is_normalized("NFC", kept) or not unicodedata.is_normalized("NFC", text)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("HTTPServerError", ["HTTP", "Server", "Error"]),
        ("getHTTPResponse_v2", ["get", "HTTP", "Response", "v2"]),
        ("already_snake_case", ["already", "snake", "case"]),
        ("kebab-case-name", ["kebab", "case", "name"]),
        ("IOError", ["IO", "Error"]),
        ("version2Beta", ["version2", "Beta"]),
        ("ABC", ["ABC"]),
        ("  spaced words ", ["spaced", "words"]),
        ("사용자Name", ["사용자", "Name"]),
        ("", []),
    ],
)
def test_split_words_breaks_at_separators_case_changes_and_acronyms(
    text: str, words: list[str]
) -> None:
    assert split_words(text) == words


_CASES = [
    ("HTTPServerError", "http_server_error", "httpServerError", "HttpServerError"),
    ("userId", "user_id", "userId", "UserId"),
    ("user_id", "user_id", "userId", "UserId"),
    ("X-Request-ID", "x_request_id", "xRequestId", "XRequestId"),
    ("parseJSONToXML", "parse_json_to_xml", "parseJsonToXml", "ParseJsonToXml"),
    ("", "", "", ""),
]


@pytest.mark.parametrize(("text", "snake", "camel", "pascal"), _CASES)
def test_case_conversions_handle_acronyms(text: str, snake: str, camel: str, pascal: str) -> None:
    assert to_snake_case(text) == snake
    assert to_kebab_case(text) == snake.replace("_", "-")
    assert to_camel_case(text) == camel
    assert to_pascal_case(text) == pascal


_IDENTIFIERS = st.from_regex(r"[A-Za-z][A-Za-z0-9_ -]{0,30}", fullmatch=True)


@settings(max_examples=300)
@given(_IDENTIFIERS)
def test_case_conversions_are_stable_when_applied_twice(text: str) -> None:
    snake = to_snake_case(text)
    assert to_snake_case(snake) == snake
    assert to_kebab_case(to_kebab_case(text)) == to_kebab_case(text)
    assert to_snake_case(to_kebab_case(text)) == snake
    assert to_camel_case(snake) == to_camel_case(text)
    assert to_pascal_case(snake) == to_pascal_case(text)

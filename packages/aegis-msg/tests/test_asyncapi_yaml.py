"""The YAML writer of the AsyncAPI document: any JSON data reads back as itself."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from aegis.msg._yaml import yaml_text

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=20,
)


@given(st.dictionaries(st.text(), json_values, min_size=1, max_size=5))
def test_any_json_document_reads_back_unchanged(document: dict[str, Any]) -> None:
    assert yaml.safe_load(yaml_text(document)) == document


@pytest.mark.parametrize(
    "text",
    [
        "true",
        "No",
        "off",
        "y",
        "null",
        "~",
        "",
        " lead",
        "trail ",
        "1.0",
        "0x1F",
        "1_000",
        "12:30",
        "2026-11-26",
        ".inf",
        "#comment",
        "a #b",
        "a: b",
        "- item",
        "? key",
        "[x]",
        "{x}",
        "*alias",
        "&anchor",
        "!tag",
        "|",
        ">",
        "'q'",
        '"q"',
        "%x",
        "@x",
        "`x`",
        "line\nbreak",
        "tab\there",
        "\x85nel",
        "\u2028ls",
        "caf\u00e9",
        "\U0001f600",
        "$ref",
        "#/components/schemas/X",
        "ce_type",
        "content-type",
        "a.b-c_d/e",
    ],
)
def test_strings_that_look_like_other_things_stay_strings(text: str) -> None:
    document = {text: text, "list": [text, {text: [text]}]}
    assert yaml.safe_load(yaml_text(document)) == document


def test_nested_lists_and_empty_containers_keep_their_shape() -> None:
    document = {"a": [[1, [2, 3]], [], {}, [{}], {"b": []}], "c": {}, "d": 1e100, "e": -0.5e-7}
    assert yaml.safe_load(yaml_text(document)) == document

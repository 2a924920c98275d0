import base64
import hashlib
import hmac
import json
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from aegis.core.errors import InvalidInputError
from aegis.core.models import CursorPage, PageParams, PaginatedResponse, SortDirection, SortField
from aegis.core.utils.pagination import (
    MAX_CURSOR_LENGTH,
    decode_cursor,
    encode_cursor,
    offset_for,
    total_pages,
)

SECRET = b"0123456789abcdef-test-secret"


class Item(BaseModel):
    name: str


class SortablePageParams(PageParams):
    max_size = 50
    sortable = frozenset({"created_at", "name"})


def _error_types(caught: pytest.ExceptionInfo[ValidationError]) -> dict[str, str]:
    return {".".join(map(str, e["loc"])): e["type"] for e in caught.value.errors()}


# --- PageParams ------------------------------------------------------------------------------


def test_page_params_default_to_the_first_page_of_twenty() -> None:
    params = PageParams()
    assert (params.page, params.size, params.sort) == (1, 20, ())
    assert (params.offset, params.limit) == (0, 20)


def test_page_params_offset_counts_the_rows_of_earlier_pages() -> None:
    assert PageParams(page=3, size=25).offset == 50


@pytest.mark.parametrize(("field", "value"), [("page", 0), ("size", 0), ("page", -1)])
def test_page_and_size_below_one_are_refused(field: str, value: int) -> None:
    with pytest.raises(ValidationError) as caught:
        PageParams.model_validate({field: value})
    assert _error_types(caught) == {field: "greater_than_equal"}


def test_size_above_the_maximum_is_rejected_not_clamped() -> None:
    assert PageParams(size=100).size == 100
    with pytest.raises(ValidationError) as caught:
        PageParams(size=101)
    assert _error_types(caught) == {"size": "less_than_equal"}
    assert "100" in str(caught.value)


def test_a_subclass_sets_its_own_maximum_size() -> None:
    with pytest.raises(ValidationError) as caught:
        SortablePageParams(size=51)
    assert "50" in str(caught.value)


def test_pages_beyond_the_maximum_point_to_cursor_pagination() -> None:
    with pytest.raises(ValidationError) as caught:
        PageParams(page=PageParams.max_page + 1)
    assert _error_types(caught) == {"page": "less_than_equal"}
    assert "cursor" in str(caught.value)


def test_sort_text_is_parsed_into_field_direction_pairs() -> None:
    params = PageParams.model_validate({"sort": "-created_at, name,+email,"})
    assert params.sort == (
        SortField("created_at", SortDirection.DESC),
        SortField("name", SortDirection.ASC),
        SortField("email", SortDirection.ASC),
    )
    field, direction = params.sort[0]
    assert (field, direction) == ("created_at", "desc")


def test_sort_accepts_a_list_of_terms_as_from_repeated_query_parameters() -> None:
    params = PageParams.model_validate({"sort": ["-created_at", "name"]})
    assert [str(term) for term in params.sort] == ["-created_at", "name"]


def test_sort_accepts_pairs_and_none() -> None:
    assert PageParams.model_validate({"sort": None}).sort == ()
    pairs = PageParams.model_validate({"sort": [("name", "desc")]})
    assert pairs.sort == (SortField("name", SortDirection.DESC),)


def test_sort_serializes_back_to_its_text_form() -> None:
    params = PageParams.model_validate({"page": 2, "sort": "-created_at,name"})
    assert params.model_dump() == {"page": 2, "size": 20, "sort": "-created_at,name"}
    assert PageParams.model_validate(params.model_dump()) == params
    assert PageParams().model_dump()["sort"] is None


@pytest.mark.parametrize("sort", ["name;drop", "1name", "-", "na me", "a" * 65, "users.name"])
def test_sort_fields_must_be_identifiers(sort: str) -> None:
    with pytest.raises(ValidationError) as caught:
        PageParams.model_validate({"sort": sort})
    assert _error_types(caught) == {"sort": "sort_field_format"}


def test_sort_field_outside_the_allow_list_is_refused_listing_the_allowed() -> None:
    assert SortablePageParams.model_validate({"sort": "-name"}).sort[0].field == "name"
    with pytest.raises(ValidationError) as caught:
        SortablePageParams.model_validate({"sort": "password"})
    assert _error_types(caught) == {"sort": "sort_field_not_allowed"}
    assert "created_at, name" in str(caught.value)


def test_sort_field_given_twice_is_refused() -> None:
    with pytest.raises(ValidationError) as caught:
        PageParams.model_validate({"sort": "name,-name"})
    assert _error_types(caught) == {"sort": "sort_field_repeated"}


def test_more_than_eight_sort_fields_are_refused() -> None:
    with pytest.raises(ValidationError) as caught:
        PageParams.model_validate({"sort": ",".join(f"f{i}" for i in range(9))})
    assert _error_types(caught) == {"sort": "too_long"}


def test_unknown_page_parameters_are_refused() -> None:
    with pytest.raises(ValidationError) as caught:
        PageParams.model_validate({"limit": 5})
    assert _error_types(caught) == {"limit": "extra_forbidden"}


# --- page answers ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "page", "pages", "has_next"),
    [(0, 1, 0, False), (1, 1, 1, False), (41, 1, 3, True), (41, 3, 3, False), (40, 2, 2, False)],
)
def test_paginated_response_counts_pages(total: int, page: int, pages: int, has_next: bool) -> None:
    response = PaginatedResponse[Item].create([], total=total, params=PageParams(page=page))
    assert (response.total, response.page, response.size) == (total, page, 20)
    assert (response.pages, response.has_next) == (pages, has_next)


def test_paginated_response_validates_orm_rows_into_the_item_model() -> None:
    rows = [SimpleNamespace(name="a"), SimpleNamespace(name="b")]
    response = PaginatedResponse[Item].create(rows, total=2, params=PageParams())
    assert response.items == [Item(name="a"), Item(name="b")]
    assert json.loads(response.model_dump_json())["items"] == [{"name": "a"}, {"name": "b"}]


def test_paginated_response_refuses_a_negative_total() -> None:
    with pytest.raises(ValidationError):
        PaginatedResponse[Item].create([], total=-1, params=PageParams())


def test_cursor_page_reports_whether_there_is_a_next_page() -> None:
    last = CursorPage[Item](items=[Item(name="a")], prev_cursor="abc")
    assert last.has_next is False
    assert CursorPage[int](items=[1], next_cursor="x").has_next is True


# --- arithmetic ------------------------------------------------------------------------------


def test_offset_for_and_total_pages() -> None:
    assert offset_for(1, 20) == 0
    assert offset_for(3, 20) == 40
    assert total_pages(0, 20) == 0
    assert total_pages(41, 20) == 3
    assert total_pages(40, 20) == 2


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: offset_for(0, 20), "page"),
        (lambda: offset_for(1, 0), "size"),
        (lambda: total_pages(-1, 20), "total"),
        (lambda: total_pages(1, 0), "size"),
        (lambda: offset_for(True, 20), "page"),
        (lambda: total_pages(1.5, 20), "total"),  # type: ignore[arg-type]
    ],
)
def test_pagination_arithmetic_refuses_bad_numbers_naming_the_field(call: Any, field: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        call()
    assert caught.value.field == field


# --- cursors ---------------------------------------------------------------------------------

_JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.text(max_size=20)
_PAYLOADS = st.dictionaries(
    st.text(max_size=10),
    st.recursive(_JSON_SCALARS, lambda inner: st.lists(inner, max_size=3), max_leaves=8),
    max_size=5,
)


def test_cursor_is_url_safe_without_padding() -> None:
    cursor = encode_cursor({"id": 42, "created_at": "2026-01-01T00:00:00Z"}, SECRET)
    assert set(cursor) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")
    assert "=" not in cursor
    assert decode_cursor(cursor, SECRET) == {"id": 42, "created_at": "2026-01-01T00:00:00Z"}


def test_cursor_accepts_a_text_secret() -> None:
    secret = "a-text-secret-of-enough-length"
    assert decode_cursor(encode_cursor({"k": "한"}, secret), secret) == {"k": "한"}


@settings(max_examples=150, deadline=None)
@given(_PAYLOADS)
def test_any_payload_survives_a_cursor_round_trip(payload: dict[str, Any]) -> None:
    assert decode_cursor(encode_cursor(payload, SECRET), SECRET) == payload


@settings(max_examples=300, deadline=None)
@given(_PAYLOADS, st.data())
def test_any_single_character_change_is_rejected(payload: dict[str, Any], data: Any) -> None:
    cursor = encode_cursor(payload, SECRET)
    index = data.draw(st.integers(min_value=0, max_value=len(cursor) - 1))
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ "
    replacement = data.draw(st.sampled_from(alphabet).filter(lambda c: c != cursor[index]))
    tampered = cursor[:index] + replacement + cursor[index + 1 :]
    with pytest.raises(InvalidInputError) as caught:
        decode_cursor(tampered, SECRET)
    assert caught.value.field == "cursor"
    assert caught.value.errors[0].type in {"format", "signature"}


@settings(max_examples=100, deadline=None)
@given(_PAYLOADS, st.data())
def test_a_truncated_or_extended_cursor_is_rejected(payload: dict[str, Any], data: Any) -> None:
    cursor = encode_cursor(payload, SECRET)
    cut = data.draw(st.integers(min_value=0, max_value=len(cursor) - 1))
    for changed in (cursor[:cut], cursor + "A", cursor + ".x"):
        with pytest.raises(InvalidInputError):
            decode_cursor(changed, SECRET)


def test_a_cursor_from_another_secret_is_rejected_as_a_signature_mismatch() -> None:
    foreign = encode_cursor({"id": 1}, b"another-service-secret-key")
    with pytest.raises(InvalidInputError) as caught:
        decode_cursor(foreign, SECRET)
    assert caught.value.errors[0].type == "signature"
    assert "another" in caught.value.message


@pytest.mark.parametrize(
    "cursor", ["", "abc", "a.b.c", "!!!.abc", "abc.", ".abc", "A.AAAA", "eyJ9.a=="]
)
def test_garbled_cursors_are_rejected_as_format_errors(cursor: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        decode_cursor(cursor, SECRET)
    assert caught.value.errors[0].type == "format"


def test_an_overlong_or_non_text_cursor_is_rejected_before_decoding() -> None:
    with pytest.raises(InvalidInputError) as caught:
        decode_cursor("A" * (MAX_CURSOR_LENGTH + 1), SECRET)
    assert caught.value.errors[0].type == "max_length"
    with pytest.raises(InvalidInputError):
        decode_cursor(b"abc.def", SECRET)  # type: ignore[arg-type]


def test_a_correctly_signed_non_object_payload_is_rejected() -> None:
    def forge(body: bytes) -> str:
        mac = hmac.new(SECRET, b"aegis.cursor.v1\x00" + body, hashlib.sha256).digest()
        encode = base64.urlsafe_b64encode
        return f"{encode(body).rstrip(b'=').decode()}.{encode(mac).rstrip(b'=').decode()}"

    for body in (b"[1,2]", b"not json"):
        with pytest.raises(InvalidInputError) as caught:
            decode_cursor(forge(body), SECRET)
        assert caught.value.errors[0].type == "format"


def test_short_secrets_and_unserializable_payloads_are_refused() -> None:
    with pytest.raises(InvalidInputError) as caught:
        encode_cursor({"id": 1}, b"short")
    assert caught.value.field == "secret"
    with pytest.raises(InvalidInputError) as caught:
        encode_cursor({"id": object()}, SECRET)
    assert caught.value.field == "payload"
    with pytest.raises(InvalidInputError):
        encode_cursor({"x": float("nan")}, SECRET)

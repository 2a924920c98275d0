import copy
import json
from collections import namedtuple
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, SecretStr, ValidationError

from aegis.core.errors import InvalidInputError
from aegis.core.utils.masking import DEFAULT_SENSITIVE_KEYS, is_sensitive_key, mask_sensitive
from aegis.core.utils.serialization import (
    as_invalid_input,
    from_dict,
    from_json,
    from_orm,
    to_dict,
    to_json,
)

VISA = "4111111111111111"  # a Luhn-valid test card number


class Address(BaseModel):
    city: str
    zip: str


class Customer(BaseModel):
    name: str
    email: str | None = None
    joined: datetime
    addresses: list[Address] = []


def _customer() -> Customer:
    return Customer(
        name="kim",
        joined=datetime(2026, 1, 1, tzinfo=UTC),
        addresses=[Address(city="Seoul", zip="04524")],
    )


# --- conversion ------------------------------------------------------------------------------


def test_to_dict_gives_python_or_json_values() -> None:
    customer = _customer()
    assert to_dict(customer)["joined"] == datetime(2026, 1, 1, tzinfo=UTC)
    assert to_dict(customer, mode="json")["joined"] == "2026-01-01T00:00:00Z"
    assert "email" not in to_dict(customer, exclude_none=True)
    assert to_dict(customer, exclude_unset=True).keys() == {"name", "joined", "addresses"}


def test_to_json_and_from_json_round_trip() -> None:
    customer = _customer()
    text = to_json(customer)
    assert json.loads(text)["addresses"] == [{"city": "Seoul", "zip": "04524"}]
    assert from_json(Customer, text) == customer
    assert from_json(Customer, text.encode()) == customer
    assert to_json(customer, indent=2).startswith("{\n")


def test_from_dict_and_from_orm_build_models() -> None:
    data = to_dict(_customer())
    assert from_dict(Customer, data) == _customer()
    row = SimpleNamespace(**data)
    assert from_orm(Customer, row) == _customer()


def test_from_json_names_every_invalid_field_as_a_dotted_path() -> None:
    text = '{"name": 1, "joined": "soon", "addresses": [{"city": "Seoul"}]}'
    with pytest.raises(InvalidInputError) as caught:
        from_json(Customer, text)
    fields = {error.field: error.type for error in caught.value.errors}
    assert fields == {
        "name": "string_type",
        "joined": "datetime_from_date_parsing",
        "addresses.0.zip": "missing",
    }
    assert caught.value.code == "VALIDATION_ERROR"
    assert "Customer" in caught.value.message
    assert "addresses.0.zip" in caught.value.message
    assert isinstance(caught.value.__cause__, ValidationError)


def test_from_json_reports_broken_json_on_the_document() -> None:
    with pytest.raises(InvalidInputError) as caught:
        from_json(Customer, '{"name": ')
    assert caught.value.field == "$"
    assert caught.value.errors[0].type == "json_invalid"


def test_validation_messages_leave_input_values_out() -> None:
    class Login(BaseModel):
        password: int

    with pytest.raises(InvalidInputError) as caught:
        from_dict(Login, {"password": "hunter2-secret"})
    assert "hunter2" not in caught.value.message
    assert "hunter2" not in json.dumps(caught.value.to_problem())


def test_many_errors_are_summarized_but_all_listed() -> None:
    class Wide(BaseModel):
        a: int
        b: int
        c: int
        d: int
        e: int
        f: int
        g: int

    with pytest.raises(InvalidInputError) as caught:
        from_dict(Wide, {})
    assert len(caught.value.errors) == 7
    assert caught.value.message.endswith("and 2 more")


def test_from_orm_names_the_missing_attribute() -> None:
    with pytest.raises(InvalidInputError) as caught:
        from_orm(Address, SimpleNamespace(city="Seoul"))
    assert caught.value.field == "zip"


def test_as_invalid_input_converts_a_validation_error() -> None:
    try:
        Address.model_validate({"city": "x"})
    except ValidationError as exc:
        error = as_invalid_input(exc)
    assert error.to_problem()["errors"] == [
        {"field": "zip", "message": "Field required", "type": "missing"}
    ]


# --- key matching ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "password",
        "PASSWORD",
        "user_password",
        "passwd",
        "accessToken",
        "refresh-token",
        "X-Api-Key",
        "api_key",
        "apiKey",
        "Authorization",
        "Proxy-Authorization",
        "Set-Cookie",
        "client_secret",
        "card_number",
        "cardNumber",
        "cvv",
        "card_cvc",
        "ssn",
        "userSSN",
        "card_pan",
        "PIN",
        "db_pwd",
        "session_id",
        "private_key",
        "credentials",
    ],
)
def test_sensitive_key_names_match_in_any_spelling(name: str) -> None:
    assert is_sensitive_key(name)


@pytest.mark.parametrize(
    "name",
    ["username", "company", "shipping", "classname", "span", "expand", "email", "id", "event", ""],
)
def test_ordinary_key_names_do_not_match(name: str) -> None:
    assert not is_sensitive_key(name)


def test_custom_keys_replace_the_defaults() -> None:
    keys = frozenset({"tenant_note", "dob"})
    assert is_sensitive_key("tenantNote", keys=keys)
    assert is_sensitive_key("user-dob", keys=keys)
    assert not is_sensitive_key("password", keys=keys)
    assert is_sensitive_key("X-Secret", keys=["secret"])
    assert not is_sensitive_key("anything", keys=frozenset({"", "--"}))
    assert not is_sensitive_key("pin", keys=frozenset({"password"}))


def test_the_key_cache_stays_bounded_under_many_distinct_names() -> None:
    keys = frozenset({"password", "pin"})
    for index in range(5000):
        assert not is_sensitive_key(f"field_{index}", keys=keys)
    assert is_sensitive_key("password", keys=keys)


# --- masking ---------------------------------------------------------------------------------


def test_mask_sensitive_redacts_sensitive_keys_at_any_depth() -> None:
    data = {
        "user": "kim",
        "auth": {"accessToken": "eyJhbGci", "scopes": ["read"]},
        "headers": [("X-Api-Key", "k-123"), {"Authorization": "Bearer abc", "Accept": "json"}],
        "login": {"credentials": {"password": "hunter2"}},
    }
    masked = mask_sensitive(data)
    assert masked == {
        "user": "kim",
        "auth": {"accessToken": "***", "scopes": ["read"]},
        "headers": [("X-Api-Key", "k-123"), {"Authorization": "***", "Accept": "json"}],
        "login": {"credentials": "***"},
    }


def test_mask_sensitive_uses_the_given_mask_and_keys() -> None:
    masked = mask_sensitive({"note": "x", "password": "y"}, keys=["note"], mask="[redacted]")
    assert masked == {"note": "[redacted]", "password": "y"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (VISA, "***"),
        (f"paid with {VISA} today", "paid with *** today"),
        ("4111 1111 1111 1111", "***"),
        ("4111-1111-1111-1111", "***"),
        (f"{VISA} 22", "*** 22"),
        ("378282246310005", "***"),  # Amex, 15 digits
        ("4111111111111112", "4111111111111112"),  # fails Luhn
        ("1767225600000", "1767225600000"),  # epoch milliseconds start with 1
        ("order 12345", "order 12345"),
        ("2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z"),
        ("postgresql://app:s3cret@db:5432/main", "postgresql://app:***@db:5432/main"),
        ("https://example.com/a:b@c", "https://example.com/a:b@c"),
    ],
)
def test_mask_sensitive_masks_card_numbers_and_url_passwords_in_text(
    text: str, expected: str
) -> None:
    assert mask_sensitive({"message": text}) == {"message": expected}


def test_numbers_that_are_not_text_are_left_alone() -> None:
    assert mask_sensitive({"id": int(VISA), "ratio": 0.5}) == {"id": int(VISA), "ratio": 0.5}


def test_mask_sensitive_never_mutates_its_input() -> None:
    data = {"password": "x", "nested": [{"token": "t", "ok": VISA}], "tuple": ("a", VISA)}
    before = copy.deepcopy(data)
    mask_sensitive(data)
    assert data == before


def test_mask_sensitive_handles_cycles_and_shared_objects() -> None:
    shared = {"token": "t"}
    data: dict[str, Any] = {"a": shared, "b": shared, "items": []}
    data["self"] = data
    data["items"].append(data["items"])
    masked = mask_sensitive(data)
    assert masked["a"] == masked["b"] == {"token": "***"}
    assert masked["self"] == "<cycle>"
    assert masked["items"] == ["<cycle>"]


def test_mask_sensitive_masks_what_lies_below_max_depth() -> None:
    deep: dict[str, Any] = {"value": "secret-free"}
    for _ in range(10):
        deep = {"child": deep}
    masked = mask_sensitive(deep, max_depth=3)
    assert masked == {"child": {"child": {"child": "***"}}}
    very_deep: list[Any] = []
    for _ in range(5000):
        very_deep = [very_deep]
    mask_sensitive(very_deep)  # no RecursionError


def test_mask_sensitive_turns_models_and_dataclasses_into_masked_dicts() -> None:
    class Login(BaseModel):
        username: str
        password: SecretStr
        api_token: str
        address: Address

    @dataclass
    class Card:
        holder: str
        card_number: str

    login = Login(
        username="kim", password=SecretStr("pw"), api_token="t", address=Address(city="S", zip="1")
    )
    assert mask_sensitive(login) == {
        "username": "kim",
        "password": "***",
        "api_token": "***",
        "address": {"city": "S", "zip": "1"},
    }
    assert mask_sensitive({"card": Card("kim", VISA)}) == {
        "card": {"holder": "kim", "card_number": "***"}
    }
    assert mask_sensitive({"hidden": SecretStr("x")}) == {"hidden": "***"}


def test_mask_sensitive_keeps_container_types() -> None:
    Pair = namedtuple("Pair", ["user", "password"])
    masked = mask_sensitive({"pair": Pair("kim", "pw"), "set": {VISA, "x"}, "tuple": (VISA,)})
    assert masked["pair"] == Pair("kim", "***")
    assert type(masked["pair"]) is Pair
    assert masked["set"] == {"***", "x"}
    assert masked["tuple"] == ("***",)
    assert mask_sensitive([VISA]) == ["***"]
    assert mask_sensitive(VISA) == "***"


def test_mask_sensitive_leaves_other_objects_and_str_enums_as_they_are() -> None:
    class Level(StrEnum):
        INFO = "info"

    marker = object()
    masked = mask_sensitive(
        {"level": Level.INFO, "obj": marker, 1: "one", "when": datetime.now(UTC)}
    )
    assert masked["level"] is Level.INFO
    assert masked["obj"] is marker
    assert masked[1] == "one"


def test_default_keys_are_a_frozenset_callers_can_extend() -> None:
    extended = DEFAULT_SENSITIVE_KEYS | {"mother_maiden_name"}
    assert mask_sensitive({"motherMaidenName": "x"}, keys=extended) == {"motherMaidenName": "***"}


_SECRET_VALUE = "S3CRET-VALUE"
_SENSITIVE_NAMES = st.sampled_from(
    ["password", "accessToken", "X-Api-Key", "Authorization", "client_secret", "ssn", "card_pan"]
)
_PLAIN_NAMES = st.sampled_from(["name", "items", "meta", "count", "tags", "city"])
_LEAVES = st.integers() | st.text(alphabet="abcxyz -", max_size=8) | st.none()


def _tree(leaves: st.SearchStrategy[Any], *, secrets: bool) -> st.SearchStrategy[Any]:
    def branches(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        plain = (
            st.lists(inner, max_size=3)
            | st.tuples(inner, inner)
            | st.dictionaries(_PLAIN_NAMES, inner, max_size=3)
        )
        if not secrets:
            return plain
        sensitive = st.dictionaries(
            _SENSITIVE_NAMES, st.just(_SECRET_VALUE) | inner, min_size=1, max_size=2
        )
        return plain | sensitive

    return st.recursive(leaves, branches, max_leaves=15)


@settings(max_examples=300, deadline=None)
@given(_tree(_LEAVES | st.fixed_dictionaries({"password": st.just(_SECRET_VALUE)}), secrets=True))
def test_no_sensitive_value_survives_at_any_depth_and_input_is_unchanged(data: Any) -> None:
    before = copy.deepcopy(data)
    masked = mask_sensitive(data)
    assert _SECRET_VALUE not in repr(masked)
    assert data == before


@settings(max_examples=200, deadline=None)
@given(_tree(_LEAVES, secrets=False))
def test_data_without_secrets_comes_back_equal(data: Any) -> None:
    assert mask_sensitive(data) == data


def _with_luhn_check_digit(body: str) -> str:
    for check in "0123456789":
        candidate = body + check
        total = 0
        for position, char in enumerate(reversed(candidate)):
            digit = int(char) * (2 if position % 2 else 1)
            total += digit - 9 if digit > 9 else digit
        if total % 10 == 0:
            return candidate
    raise AssertionError("a Luhn check digit always exists")


@settings(max_examples=300, deadline=None)
@given(
    st.from_regex(r"[2-9][0-9]{11,17}", fullmatch=True).map(_with_luhn_check_digit),
    st.text(alphabet="abc :,", max_size=10),
    st.text(alphabet="abc :,", max_size=10),
    st.sampled_from(["", " ", "-"]),
)
def test_any_luhn_valid_card_number_in_text_is_masked(
    number: str, before: str, after: str, separator: str
) -> None:
    spaced = separator.join(number[index : index + 4] for index in range(0, len(number), 4))
    masked = mask_sensitive({"note": f"{before}{spaced}{after}"})["note"]
    assert number not in masked.replace(" ", "").replace("-", "")
    assert masked == f"{before}***{after}"

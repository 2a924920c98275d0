"""Tests for aegis.core.utils.validation: e-mail, phone, password strength, pydantic types."""

from __future__ import annotations

from typing import Annotated

import pytest
from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError

from aegis.core.errors import InvalidInputError
from aegis.core.utils.validation import (
    Email,
    PasswordPolicy,
    PhoneNumber,
    StrongPassword,
    check,
    check_password_strength,
    normalize_phone,
    require_strong_password,
    validate_email,
)

STRONG = "Tr0ubadour-Horse-Staple"


class SignUp(BaseModel):
    email: Email
    phone: PhoneNumber
    password: StrongPassword


# --- e-mail ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "normalized"),
    [
        ("alice@Example.COM", "alice@example.com"),
        ("Alice@example.com", "Alice@example.com"),
        ("user@B\u00fccher.example", "user@b\u00fccher.example"),
        ("user@xn--bcher-kva.example", "user@b\u00fccher.example"),
    ],
)
def test_validate_email_normalizes_the_domain(value: str, normalized: str) -> None:
    assert validate_email(value) == normalized


@pytest.mark.parametrize("value", ["", "plain", "a@b", "a@@example.com", "a b@example.com"])
def test_validate_email_refuses_bad_addresses_naming_field_and_rule(value: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        validate_email(value, field="contact")
    assert caught.value.field == "contact"
    assert caught.value.errors[0].type == "email"
    assert caught.value.message.startswith("contact is not a valid e-mail address:")


# --- phone ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "region", "e164"),
    [
        ("+44 20 7946 0018", None, "+442079460018"),
        ("+44 (0)20-7946-0018", None, "+442079460018"),
        ("020 7946 0018", "GB", "+442079460018"),
        ("020 7946 0018", "gb", "+442079460018"),
        ("(201) 555-0123", "US", "+12015550123"),
    ],
)
def test_normalize_phone_returns_e164(value: str, region: str | None, e164: str) -> None:
    assert normalize_phone(value, region=region) == e164


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("020 7946 0018", "country code"),
        ("hello", "does not look like"),
        ("+44 20 7946 0018 1234 5678 9012 3456", "too long"),
    ],
)
def test_normalize_phone_refuses_unreadable_numbers_saying_why(value: str, reason: str) -> None:
    with pytest.raises(InvalidInputError, match=reason) as caught:
        normalize_phone(value)
    assert caught.value.field == "phone"
    assert caught.value.errors[0].type == "phone_format"


def test_normalize_phone_refuses_numbers_outside_the_numbering_plan() -> None:
    with pytest.raises(InvalidInputError) as caught:
        normalize_phone("+1 200 555 0100", field="mobile")
    assert caught.value.field == "mobile"
    assert caught.value.errors[0].type == "phone_invalid"


# --- passwords ------------------------------------------------------------------------------------


def test_strong_password_breaks_no_rule() -> None:
    assert check_password_strength(STRONG) == []
    assert require_strong_password(STRONG) == STRONG


def test_check_password_strength_lists_every_broken_rule_in_order() -> None:
    assert check_password_strength("abc") == ["min_length", "uppercase", "digit", "common"]
    assert check_password_strength("A" * 200) == ["max_length", "lowercase", "digit", "common"]


@pytest.mark.parametrize(
    "password", ["Password1234", "Qwerty123456!", "!!Welcome2024", "Pass word 1234", "Aa1Aa1Aa1Aa1"]
)
def test_common_passwords_and_repeats_are_refused(password: str) -> None:
    assert check_password_strength(password) == ["common"]


def test_rules_can_be_switched_and_tuned() -> None:
    passphrase = "correct horse battery staple"
    assert check_password_strength(passphrase) == ["uppercase", "digit"]
    relaxed = check_password_strength(
        passphrase, PasswordPolicy(min_length=20, require_uppercase=False, require_digit=False)
    )
    assert relaxed == []
    assert check_password_strength(STRONG, PasswordPolicy(require_symbol=True)) == []
    assert check_password_strength("Tr0ubadourHorse", PasswordPolicy(require_symbol=True)) == [
        "symbol"
    ]
    assert check_password_strength("Password1234", PasswordPolicy(forbid_common=False)) == []


def test_letter_classes_are_unicode_aware() -> None:
    assert check_password_strength("\u00c4rger-\u00fcber-9-\u00f6l") == []


def test_personal_details_are_refused_ignoring_case_and_short_entries() -> None:
    policy = PasswordPolicy(forbidden=["Alice", "alice@example.com", "al"])
    assert check_password_strength("My-ALICE-pass-42", policy) == ["forbidden"]
    assert check_password_strength(STRONG, policy) == []


def test_require_strong_password_reports_each_rule_without_the_password() -> None:
    with pytest.raises(InvalidInputError) as caught:
        require_strong_password("abc", field="new_password")
    error = caught.value
    assert error.field == "new_password"
    assert [e.type for e in error.errors] == ["min_length", "uppercase", "digit", "common"]
    assert {e.field for e in error.errors} == {"new_password"}
    assert "use at least 12 characters" in error.message
    problem = error.to_problem()
    assert problem["status"] == 422
    assert "abc" not in str(problem)


# --- pydantic types -------------------------------------------------------------------------------


def test_model_normalizes_email_and_phone_and_keeps_password_secret() -> None:
    signup = SignUp.model_validate(
        {"email": "Bob@Example.com", "phone": "+44 20 7946 0018", "password": STRONG}
    )
    assert signup.email == "Bob@example.com"
    assert signup.phone == "+442079460018"
    assert isinstance(signup.password, SecretStr)
    assert signup.password.get_secret_value() == STRONG
    assert STRONG not in repr(signup)


def test_model_errors_name_the_field_and_the_rule() -> None:
    with pytest.raises(ValidationError) as caught:
        SignUp.model_validate({"email": "nope", "phone": "12", "password": "short"})
    errors = {error["loc"]: error for error in caught.value.errors()}
    assert set(errors) == {("email",), ("phone",), ("password",)}
    assert errors[("email",)]["type"] == "email"
    assert errors[("phone",)]["type"] == "phone_format"
    password_error = errors[("password",)]
    assert password_error["type"] == "min_length"
    assert password_error["ctx"]["rules"] == ["min_length", "uppercase", "digit"]
    assert "use at least 12 characters" in password_error["msg"]


def test_hide_input_in_errors_keeps_a_rejected_password_out_of_the_error() -> None:
    class Quiet(BaseModel):
        model_config = ConfigDict(hide_input_in_errors=True)
        password: StrongPassword

    with pytest.raises(ValidationError) as caught:
        Quiet.model_validate({"password": "hunter2-secret"})
    assert "hunter2-secret" not in str(caught.value)


def _no_spaces(value: str) -> str:
    if " " in value:
        raise ValueError("must not contain spaces")
    return value


def _lowercase(value: str) -> str:
    return value.lower()


def _no_braces(value: str) -> str:
    if "{" in value:
        raise InvalidInputError("must not contain {braces}", field="x", rule="braces")
    return value


Handle = Annotated[str, check(_lowercase), check(_no_spaces), check(_no_braces)]


class Profile(BaseModel):
    handle: Handle
    work_email: Annotated[str, check(validate_email), check(_no_spaces)]


def test_check_composes_custom_validators_in_order() -> None:
    profile = Profile(handle="MixedCase", work_email="me@Corp.example")
    assert profile.handle == "mixedcase"
    assert profile.work_email == "me@corp.example"


def test_check_reports_value_errors_and_aegis_rules_on_the_field() -> None:
    with pytest.raises(ValidationError) as caught:
        Profile(handle="has space", work_email="me@corp.example")
    [error] = caught.value.errors()
    assert error["loc"] == ("handle",)
    assert error["type"] == "value_error"
    assert "must not contain spaces" in error["msg"]

    with pytest.raises(ValidationError) as caught:
        Profile(handle="{x}", work_email="me@corp.example")
    [error] = caught.value.errors()
    assert (error["loc"], error["type"]) == (("handle",), "braces")
    assert error["msg"] == "must not contain {braces}"


def test_check_uses_the_error_message_when_no_field_is_named() -> None:
    def refuse(value: str) -> str:
        raise InvalidInputError("not today")

    class Model(BaseModel):
        value: Annotated[str, check(refuse)]

    with pytest.raises(ValidationError) as caught:
        Model(value="x")
    [error] = caught.value.errors()
    assert (error["type"], error["msg"]) == ("invalid", "not today")

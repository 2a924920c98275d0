"""aegis.core.errors: stable codes, statuses, and RFC 9457 problem documents."""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from pathlib import Path

import pytest

from aegis.core import errors
from aegis.core.errors import (
    DEFAULT_PROBLEM_TYPE_BASE,
    ERROR_CODES,
    AegisError,
    ConfigurationError,
    ConflictError,
    DatabaseError,
    DatabaseUnavailableError,
    ErrorCode,
    ExternalServiceError,
    FieldError,
    ForbiddenError,
    IntegrityViolationError,
    InvalidInputError,
    NotFoundError,
    RateLimitedError,
    UnauthorizedError,
    problem_type,
    register_error_code,
    status_for,
)


@pytest.fixture
def registered_codes() -> Iterator[list[str]]:
    """Codes a test registers; removed again afterwards so tests do not leak into each other."""
    codes: list[str] = []
    yield codes
    for code in codes:
        errors._CODES.pop(code, None)


def test_every_code_has_an_http_error_status_and_a_title() -> None:
    for code, entry in ERROR_CODES.items():
        assert entry.code == code
        assert 400 <= entry.status <= 599
        assert entry.title


def test_code_table_is_read_only() -> None:
    with pytest.raises(TypeError):
        ERROR_CODES["NEW_CODE"] = ErrorCode("NEW_CODE", 400, "New")  # type: ignore[index]


@pytest.mark.parametrize(
    ("error_class", "code", "status"),
    [
        (AegisError, "INTERNAL_ERROR", 500),
        (InvalidInputError, "VALIDATION_ERROR", 422),
        (NotFoundError, "NOT_FOUND", 404),
        (ConflictError, "CONFLICT", 409),
        (UnauthorizedError, "UNAUTHORIZED", 401),
        (ForbiddenError, "FORBIDDEN", 403),
        (RateLimitedError, "RATE_LIMITED", 429),
        (DatabaseError, "DB_ERROR", 500),
        (DatabaseUnavailableError, "DB_UNAVAILABLE", 503),
        (IntegrityViolationError, "DB_INTEGRITY", 409),
        (ExternalServiceError, "EXTERNAL_SERVICE_ERROR", 502),
        (ConfigurationError, "CONFIGURATION_ERROR", 500),
    ],
)
def test_each_error_class_answers_with_its_default_code_and_status(
    error_class: type[AegisError], code: str, status: int
) -> None:
    error = error_class("something went wrong")
    assert (error.code, error.status, error.message) == (code, status, "something went wrong")
    assert str(error) == "something went wrong"
    assert error.title == ERROR_CODES[code].title


def test_database_errors_share_a_base_class() -> None:
    assert issubclass(DatabaseUnavailableError, DatabaseError)
    assert issubclass(IntegrityViolationError, DatabaseError)


def test_an_explicit_code_brings_its_own_status() -> None:
    error = ExternalServiceError("billing timed out", code="EXTERNAL_SERVICE_TIMEOUT")
    assert (error.code, error.status) == ("EXTERNAL_SERVICE_TIMEOUT", 504)
    assert ConflictError("stale row", code="DB_CONFLICT").title == "Concurrent update conflict"


def test_an_explicit_status_wins_over_the_code_status() -> None:
    assert NotFoundError("gone", status=410).status == 410


def test_an_unknown_code_answers_500_with_a_title_made_from_the_code() -> None:
    error = AegisError("odd", code="SOMETHING_ODD")
    assert error.status == 500
    assert error.title == "Something odd"
    assert status_for("SOMETHING_ODD") == 500


def test_register_error_code_adds_a_code_that_errors_then_use(
    registered_codes: list[str],
) -> None:
    registered_codes.append("QUOTA_EXCEEDED")
    entry = register_error_code("QUOTA_EXCEEDED", 402, "Quota exceeded")
    assert entry == ErrorCode("QUOTA_EXCEEDED", 402, "Quota exceeded")
    assert ERROR_CODES["QUOTA_EXCEEDED"] is entry
    error = AegisError("monthly quota used up", code="QUOTA_EXCEEDED")
    assert (error.status, error.title) == (402, "Quota exceeded")


def test_registering_the_same_code_again_identically_is_a_no_op(
    registered_codes: list[str],
) -> None:
    registered_codes.append("QUOTA_EXCEEDED")
    first = register_error_code("QUOTA_EXCEEDED", 402, "Quota exceeded")
    assert register_error_code("QUOTA_EXCEEDED", 402, "Quota exceeded") == first
    assert register_error_code("NOT_FOUND", 404, "Not found") == ERROR_CODES["NOT_FOUND"]


@pytest.mark.parametrize(
    ("status", "title"), [(409, "Not found"), (404, "Missing")], ids=["status", "title"]
)
def test_registering_a_known_code_differently_raises_and_keeps_the_original(
    status: int, title: str
) -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_error_code("NOT_FOUND", status, title)
    assert ERROR_CODES["NOT_FOUND"] == ErrorCode("NOT_FOUND", 404, "Not found")


@pytest.mark.parametrize(
    "code",
    ["", "quota", "Quota_Exceeded", "QUOTA-EXCEEDED", "1QUOTA", "_QUOTA", "QUOTA__X", "ÄRGER"],
)
def test_register_error_code_rejects_codes_that_are_not_upper_snake_case(code: str) -> None:
    with pytest.raises(ValueError, match="UPPER_SNAKE_CASE"):
        register_error_code(code, 400, "Bad")
    assert code not in ERROR_CODES


@pytest.mark.parametrize("status", [200, 399, 600])
def test_register_error_code_rejects_statuses_outside_the_http_error_range(status: int) -> None:
    with pytest.raises(ValueError, match="not an HTTP error status"):
        register_error_code("ODD_STATUS", status, "Odd")
    assert "ODD_STATUS" not in ERROR_CODES


def test_problem_type_is_the_base_followed_by_the_kebab_case_code() -> None:
    assert problem_type("DB_INTEGRITY") == "urn:aegis:problem:db-integrity"
    assert problem_type("NOT_FOUND", "https://errors.example.com/") == (
        "https://errors.example.com/not-found"
    )
    assert DEFAULT_PROBLEM_TYPE_BASE == "urn:aegis:problem:"


def test_to_problem_renders_the_standard_members() -> None:
    error = NotFoundError("user 42 does not exist", details={"user_id": 42})
    assert error.to_problem(instance="/users/42", request_id="r-1") == {
        "type": "urn:aegis:problem:not-found",
        "title": "Not found",
        "status": 404,
        "detail": "user 42 does not exist",
        "code": "NOT_FOUND",
        "instance": "/users/42",
        "request_id": "r-1",
        "user_id": 42,
    }
    assert list(error.to_problem(instance="/users/42"))[:6] == [
        "type",
        "title",
        "status",
        "detail",
        "code",
        "instance",
    ]


def test_to_problem_leaves_out_instance_and_request_id_when_not_given() -> None:
    problem = ConflictError("email taken").to_problem(type_base="https://errors.example.com/")
    assert problem == {
        "type": "https://errors.example.com/conflict",
        "title": "Conflict",
        "status": 409,
        "detail": "email taken",
        "code": "CONFLICT",
    }


def test_details_never_overwrite_or_stand_in_for_standard_members() -> None:
    standard = ["type", "title", "status", "detail", "code", "instance", "request_id"]
    error = ForbiddenError("no", details=dict.fromkeys(standard, "forged") | {"extra": 1})
    problem = error.to_problem()
    assert problem == {
        "type": "urn:aegis:problem:forbidden",
        "title": "Forbidden",
        "status": 403,
        "detail": "no",
        "code": "FORBIDDEN",
        "extra": 1,
    }
    given = error.to_problem(instance="/x", request_id="r-2")
    assert (given["instance"], given["request_id"]) == ("/x", "r-2")


def test_details_are_copied_so_later_changes_to_the_callers_dict_do_not_leak_in() -> None:
    details = {"user_id": 1}
    error = NotFoundError("gone", details=details)
    details["user_id"] = 2
    assert error.details == {"user_id": 1}


def test_invalid_input_with_one_field_lists_it_as_the_only_error() -> None:
    error = InvalidInputError("must be at most 100", field="size", rule="max")
    assert error.field == "size"
    assert error.errors == [FieldError("size", "must be at most 100", "max")]
    problem = error.to_problem()
    assert (problem["status"], problem["code"]) == (422, "VALIDATION_ERROR")
    assert problem["errors"] == [{"field": "size", "message": "must be at most 100", "type": "max"}]


def test_invalid_input_rule_defaults_to_invalid() -> None:
    assert InvalidInputError("bad", field="name").errors == [FieldError("name", "bad", "invalid")]


def test_invalid_input_with_several_fields_keeps_them_all_in_order() -> None:
    listed = [
        FieldError("address.zip", "must have 5 digits", "pattern"),
        FieldError("items.0.name", "is required", "missing"),
    ]
    error = InvalidInputError("2 fields are invalid", errors=listed)
    assert error.field == "address.zip"
    assert [entry["field"] for entry in error.to_problem()["errors"]] == [
        "address.zip",
        "items.0.name",
    ]
    assert listed == error.errors
    assert listed is not error.errors


def test_invalid_input_field_comes_first_before_the_other_errors() -> None:
    error = InvalidInputError(
        "bad email", field="email", rule="format", errors=[FieldError("age", "too low", "min")]
    )
    assert [entry.field for entry in error.errors] == ["email", "age"]
    assert error.field == "email"


def test_invalid_input_without_fields_has_no_field_and_an_empty_error_list() -> None:
    error = InvalidInputError("the request is invalid")
    assert error.field is None
    assert error.to_problem()["errors"] == []


def test_rate_limited_error_carries_retry_after_into_the_problem() -> None:
    error = RateLimitedError("slow down", retry_after=2.5, details={"limit": 10})
    assert error.retry_after == 2.5
    assert error.to_problem()["retry_after"] == 2.5
    assert error.to_problem()["limit"] == 10


def test_rate_limited_error_without_retry_after_adds_no_member() -> None:
    error = RateLimitedError("slow down")
    assert error.retry_after is None
    assert "retry_after" not in error.to_problem()


def test_repr_names_the_class_message_code_and_status() -> None:
    assert repr(NotFoundError("user 42 does not exist")) == (
        "NotFoundError('user 42 does not exist', code='NOT_FOUND', status=404)"
    )


def test_errors_survive_pickling_for_process_pools() -> None:
    error = RateLimitedError("slow down", retry_after=3, details={"limit": 10})
    copy = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes
    assert repr(copy) == repr(error)
    assert copy.to_problem() == error.to_problem()


def test_field_error_renders_as_a_problem_errors_entry() -> None:
    assert FieldError("items.0.name", "is required", "missing").to_dict() == {
        "field": "items.0.name",
        "message": "is required",
        "type": "missing",
    }


def test_every_name_in_all_exists() -> None:
    assert [name for name in errors.__all__ if not hasattr(errors, name)] == []


class OrderClosedError(ConflictError):
    """Declared the natural way: ``code`` and ``title`` as class attributes."""

    code = "ORDER_CLOSED"
    title = "Order closed"


class PaymentRequiredError(AegisError):
    code = "PAYMENT_REQUIRED"
    status = 402


class LegacySpellingError(NotFoundError):
    default_code = "ORDER_MISSING"


def test_a_subclass_setting_code_answers_with_that_code_and_its_base_class_status() -> None:
    error = OrderClosedError("order 7 is closed")
    assert (error.code, error.status, error.title) == ("ORDER_CLOSED", 409, "Order closed")
    assert OrderClosedError.code == OrderClosedError.default_code == "ORDER_CLOSED"
    assert error.to_problem() == {
        "type": "urn:aegis:problem:order-closed",
        "title": "Order closed",
        "status": 409,
        "detail": "order 7 is closed",
        "code": "ORDER_CLOSED",
    }


def test_a_subclass_setting_status_answers_with_it_and_a_title_made_from_the_code() -> None:
    error = PaymentRequiredError("top up first")
    assert (error.code, error.status, error.title) == ("PAYMENT_REQUIRED", 402, "Payment required")
    assert error.to_problem()["status"] == 402


def test_a_subclass_of_a_declared_error_inherits_its_status_and_may_set_its_own_code() -> None:
    class CardDeclinedError(PaymentRequiredError):
        code = "CARD_DECLINED"

    assert (CardDeclinedError("no").code, CardDeclinedError("no").status) == ("CARD_DECLINED", 402)


def test_the_default_code_spelling_still_works() -> None:
    error = LegacySpellingError("order 7 is gone")
    assert (error.code, error.status) == ("ORDER_MISSING", 404)
    assert LegacySpellingError.code == "ORDER_MISSING"


def test_a_registered_code_brings_its_status_and_title_to_a_declared_error(
    registered_codes: list[str],
) -> None:
    registered_codes.append("ORDER_LOCKED")
    register_error_code("ORDER_LOCKED", 423, "Order locked")

    class OrderLockedError(ConflictError):
        code = "ORDER_LOCKED"

    assert (OrderLockedError("x").status, OrderLockedError("x").title) == (423, "Order locked")


def test_arguments_still_win_over_the_class_attributes() -> None:
    error = OrderClosedError("closed", code="NOT_FOUND", status=410)
    assert (error.code, error.status) == ("NOT_FOUND", 410)
    assert OrderClosedError("closed", code="NOT_FOUND").status == 404


@pytest.mark.parametrize(
    "body",
    [
        {"code": 42},
        {"code": ""},
        {"code": "A_CODE", "default_code": "ANOTHER_CODE"},
        {"code": "A_CODE", "status": 200},
        {"code": "A_CODE", "status": "409"},
    ],
)
def test_a_wrongly_declared_error_class_fails_when_it_is_defined(body: dict[str, object]) -> None:
    with pytest.raises(TypeError, match="WrongError"):
        type("WrongError", (AegisError,), body)


def test_the_readme_example_of_declaring_your_own_error_runs() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("### Your own errors", 1)[1]
    block = section.split("```python\n", 1)[1].split("```", 1)[0]
    exec(compile(block, "README.md", "exec"), {})  # noqa: S102 - our own documentation

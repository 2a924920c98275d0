import json
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from types import SimpleNamespace
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from aegis.core import models
from aegis.core.errors import InvalidInputError
from aegis.core.models import (
    AuditInfo,
    BaseEntity,
    Contract,
    EntityStatus,
    Environment,
    Permission,
    Role,
    SchemaVersion,
    UserRef,
    UtcDatetime,
    has_permission,
)

SEOUL = ZoneInfo("Asia/Seoul")


class User(BaseEntity):
    name: str


def _error_types(caught: pytest.ExceptionInfo[ValidationError]) -> dict[str, str]:
    return {".".join(map(str, e["loc"])): e["type"] for e in caught.value.errors()}


def test_models_exports_exactly_its_public_names() -> None:
    assert set(models.__all__) == {
        "ENVIRONMENT_ALIASES",
        "WILDCARD",
        "AuditInfo",
        "BaseEntity",
        "Contract",
        "CursorPage",
        "EntityStatus",
        "Environment",
        "Int64",
        "PageParams",
        "PaginatedResponse",
        "Permission",
        "Role",
        "SafeStr",
        "SchemaVersion",
        "SortDirection",
        "SortField",
        "SubjectId",
        "UserRef",
        "UtcDatetime",
        "has_permission",
        "uuid7",
        "uuid7_str",
        "uuid7_timestamp",
    }
    assert all(hasattr(models, name) for name in models.__all__)


def test_importing_models_loads_only_the_standard_library_and_pydantic() -> None:
    script = (
        "import json, sys\n"
        "before = set(sys.modules)\n"
        "import aegis.core.models\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in set(sys.modules) - before})))\n"
    )
    output = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    loaded = set(json.loads(output))
    allowed = {"aegis", "pydantic", "pydantic_core", "typing_extensions", "annotated_types"}
    allowed |= {"typing_inspection"}
    # sysconfig's generated data module is standard library but not in stdlib_module_names
    loaded = {name for name in loaded if not name.startswith("_sysconfigdata_")}
    assert loaded - sys.stdlib_module_names - allowed == set()


# --- BaseEntity ------------------------------------------------------------------------------


def test_new_entity_gets_a_uuid7_and_one_utc_timestamp() -> None:
    user = User(name="kim")
    assert user.id.version == 7
    assert user.created_at == user.updated_at
    assert user.created_at.tzinfo is UTC
    assert abs(user.created_at - datetime.now(UTC)) < timedelta(seconds=5)
    assert user.deleted_at is None
    assert user.is_deleted is False


def test_each_entity_gets_its_own_id() -> None:
    assert len({User(name="a").id for _ in range(100)}) == 100


def test_entity_refuses_naive_datetimes_with_a_clear_error() -> None:
    with pytest.raises(ValidationError) as caught:
        User(name="kim", created_at=datetime(2026, 1, 2, 3, 4, 5))
    assert _error_types(caught) == {"created_at": "timezone_aware"}
    assert "add a UTC offset or Z" in str(caught.value)


def test_entity_refuses_iso_text_without_an_offset() -> None:
    with pytest.raises(ValidationError) as caught:
        User.model_validate({"name": "kim", "updated_at": "2026-01-02T03:04:05"})
    assert _error_types(caught) == {"updated_at": "timezone_aware"}


def test_entity_converts_other_zones_to_utc() -> None:
    user = User.model_validate(
        {
            "name": "kim",
            "created_at": datetime(2026, 1, 2, 12, 0, tzinfo=SEOUL),
            "updated_at": "2026-01-02T12:00:00+09:00",
        }
    )
    assert user.created_at == datetime(2026, 1, 2, 3, 0, tzinfo=UTC)
    assert user.created_at.tzinfo is UTC
    assert user.updated_at.tzinfo is UTC


def test_entity_json_writes_datetimes_as_iso_8601_with_z() -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
    user = User(name="kim", created_at=moment, updated_at=moment.replace(microsecond=0))
    data = json.loads(user.model_dump_json())
    assert data["created_at"] == "2026-01-02T03:04:05.123456Z"
    assert data["updated_at"] == "2026-01-02T03:04:05.000000Z"
    assert data["deleted_at"] is None
    assert user.model_dump()["created_at"] == moment


def test_entity_survives_a_json_round_trip() -> None:
    user = User(name="kim", deleted_at=datetime(2026, 3, 1, tzinfo=SEOUL))
    assert User.model_validate_json(user.model_dump_json()) == user


def test_entity_validates_from_orm_attributes() -> None:
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    row = SimpleNamespace(
        id=UUID("019b76da-a800-7000-8000-000000000000"),
        created_at=moment,
        updated_at=moment,
        deleted_at=None,
        name="kim",
    )
    user = User.model_validate(row)
    assert (user.id, user.name, user.created_at) == (row.id, "kim", moment)


def test_soft_deleted_entity_reports_is_deleted() -> None:
    user = User(name="kim")
    user.deleted_at = datetime(2026, 1, 1, 9, tzinfo=SEOUL)
    assert user.is_deleted is True
    assert user.deleted_at == datetime(2026, 1, 1, tzinfo=UTC)


def test_assigning_a_naive_datetime_is_refused() -> None:
    user = User(name="kim")
    with pytest.raises(ValidationError) as caught:
        user.updated_at = datetime(2026, 1, 1)
    assert _error_types(caught) == {"updated_at": "timezone_aware"}


def test_a_time_that_leaves_the_utc_range_is_refused() -> None:
    early = datetime.min.replace(tzinfo=timezone(timedelta(hours=9)))
    with pytest.raises(ValidationError) as caught:
        User(name="kim", created_at=early)
    assert _error_types(caught) == {"created_at": "datetime_range"}


def test_utc_datetime_is_usable_in_any_model() -> None:
    class Event(BaseModel):
        at: UtcDatetime

    event = Event.model_validate({"at": "2026-01-02T12:00:00+09:00"})
    assert event.model_dump_json() == '{"at":"2026-01-02T03:00:00.000000Z"}'


# --- contracts -------------------------------------------------------------------------------


def test_user_ref_takes_a_uuid_or_a_subject_string_as_id() -> None:
    uuid = UUID("019b76da-a800-7000-8000-000000000000")
    assert UserRef.model_validate({"id": uuid}).id == str(uuid)
    assert UserRef(id=" auth0|123 ").id == "auth0|123"


def test_contract_writes_its_schema_version() -> None:
    assert UserRef(id="u-1").model_dump()["schema_version"] == "1.0"
    assert AuditInfo().schema_version == "1.0"


def test_contract_reads_a_newer_minor_and_ignores_its_new_fields() -> None:
    ref = UserRef.model_validate(
        {"schema_version": "1.7", "id": "u-1", "username": "kim", "avatar_url": "https://x"}
    )
    assert ref.username == "kim"
    assert ref.schema_version == "1.0"
    assert "avatar_url" not in ref.model_dump()


def test_contract_refuses_another_major_version() -> None:
    with pytest.raises(ValidationError) as caught:
        UserRef.model_validate({"schema_version": "2.0", "id": "u-1"})
    assert _error_types(caught) == {"schema_version": "schema_major"}
    assert "different major" in str(caught.value)


@pytest.mark.parametrize("version", ["1", "v1.0", "1.0.0", "01.0", "", "1.x"])
def test_contract_refuses_a_malformed_schema_version(version: str) -> None:
    with pytest.raises(ValidationError) as caught:
        UserRef.model_validate({"schema_version": version, "id": "u-1"})
    assert "schema_version" in _error_types(caught)


def test_a_minor_bump_is_a_subclass_with_a_new_default_and_optional_fields() -> None:
    class UserRefV11(UserRef):
        schema_version: SchemaVersion = "1.1"
        locale: str | None = None

    old_payload = UserRef(id="u-1").model_dump()
    upgraded = UserRefV11.model_validate(old_payload)
    assert upgraded.schema_version == "1.1"
    assert upgraded.locale is None
    assert UserRef.model_validate(UserRefV11(id="u-1", locale="ko").model_dump()).id == "u-1"


def test_a_new_major_is_a_new_model_that_refuses_the_old_major() -> None:
    class UserRefV2(Contract):
        schema_version: SchemaVersion = "2.0"
        subject: str

    assert UserRefV2(subject="u").schema_version == "2.0"
    with pytest.raises(ValidationError):
        UserRefV2.model_validate({"schema_version": "1.0", "subject": "u"})


def test_contracts_are_frozen_and_hashable() -> None:
    ref = UserRef(id="u-1")
    with pytest.raises(ValidationError):
        ref.id = "u-2"  # type: ignore[misc]  # the point: frozen at run time too
    assert hash(ref) == hash(UserRef(id="u-1"))


def test_user_ref_refuses_a_malformed_email_and_an_empty_id() -> None:
    with pytest.raises(ValidationError) as caught:
        UserRef(id="", email="not an email")
    assert set(_error_types(caught)) == {"id", "email"}


def test_audit_info_records_who_when_and_why_in_utc() -> None:
    audit = AuditInfo(
        created_by=UserRef(id="u-1", display_name="Kim"),
        updated_at=datetime(2026, 1, 2, 12, tzinfo=SEOUL),
        reason="import from CRM",
        request_id="r-1",
    )
    data = json.loads(audit.model_dump_json())
    assert data["created_by"]["display_name"] == "Kim"
    assert data["updated_at"] == "2026-01-02T03:00:00.000000Z"
    assert data["created_at"].endswith("Z")
    assert AuditInfo.model_validate_json(audit.model_dump_json()) == audit


def test_audit_info_reads_orm_objects() -> None:
    @dataclass
    class Row:
        created_by: object
        created_at: datetime

    audit = AuditInfo.model_validate(
        Row(created_by=SimpleNamespace(id="u-1"), created_at=datetime(2026, 1, 1, tzinfo=UTC))
    )
    assert audit.created_by == UserRef(id="u-1")


# --- enums -----------------------------------------------------------------------------------


def test_enums_have_the_documented_values() -> None:
    assert {status.value for status in EntityStatus} == {
        "active",
        "inactive",
        "pending",
        "suspended",
        "archived",
        "deleted",
    }
    assert {role.value for role in Role} == {"admin", "user", "viewer", "service"}
    assert [env.value for env in Environment] == ["development", "test", "staging", "production"]
    assert f"{Role.ADMIN}" == "admin"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("production", Environment.PRODUCTION),
        (" PROD ", Environment.PRODUCTION),
        ("dev", Environment.DEVELOPMENT),
        ("Local", Environment.DEVELOPMENT),
        ("testing", Environment.TEST),
        ("stage", Environment.STAGING),
    ],
)
def test_environment_lookup_ignores_case_and_knows_short_names(
    text: str, expected: Environment
) -> None:
    assert Environment(text) is expected


def test_environment_refuses_unknown_names_and_non_text() -> None:
    with pytest.raises(ValueError, match="qa"):
        Environment("qa")
    with pytest.raises(ValueError, match="1"):
        Environment(1)  # type: ignore[arg-type]


def test_environment_as_a_model_field_accepts_aliases() -> None:
    class Settings(BaseModel):
        environment: Environment

    assert Settings.model_validate({"environment": "PROD"}).environment.is_production
    assert not Environment.STAGING.is_production


# --- permissions -----------------------------------------------------------------------------


def test_permission_splits_into_resource_and_action() -> None:
    permission = Permission("policy:read")
    assert (permission.resource, permission.action) == ("policy", "read")
    assert permission == "policy:read"
    assert Permission(permission) is permission


@pytest.mark.parametrize(
    "text",
    ["policy", "Policy:read", "policy:", ":read", "policy:read:all", "po licy:read", "a:b*", ""],
)
def test_malformed_permission_is_refused_naming_the_rule(text: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        Permission(text)
    assert caught.value.field == "permission"
    assert caught.value.errors[0].type == "permission_format"


def test_overlong_or_non_text_permission_is_refused() -> None:
    with pytest.raises(InvalidInputError):
        Permission("a" * 120 + ":" + "b" * 10)
    with pytest.raises(InvalidInputError):
        Permission(42)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("granted", "required", "allowed"),
    [
        ("policy:read", "policy:read", True),
        ("policy:read", "policy:write", False),
        ("policy:*", "policy:delete", True),
        ("policy:*", "user:read", False),
        ("*:read", "user:read", True),
        ("*:read", "user:write", False),
        ("*:*", "anything:at-all", True),
        ("policy:read", "policy:*", False),
        ("policy:*", "policy:*", True),
    ],
)
def test_permission_wildcards_match_as_documented(
    granted: str, required: str, allowed: bool
) -> None:
    assert Permission(granted).matches(required) is allowed


def test_has_permission_checks_every_grant_and_refuses_malformed_ones() -> None:
    assert has_permission(["user:read", "policy:*"], "policy:delete")
    assert not has_permission([], "policy:read")
    with pytest.raises(InvalidInputError):
        has_permission(["Policy:Read"], "policy:read")


_PART = st.from_regex(r"[a-z0-9_-]{1,20}", fullmatch=True)


@settings(max_examples=200)
@given(_PART, _PART)
def test_any_well_formed_permission_parses_and_grants_itself(resource: str, action: str) -> None:
    permission = Permission(f"{resource}:{action}")
    assert permission.matches(permission)
    assert Permission("*:*").matches(permission)
    assert Permission(f"{resource}:*").matches(permission)


def test_permission_works_as_a_pydantic_field() -> None:
    class Grant(BaseModel):
        permissions: list[Permission]

    grant = Grant.model_validate({"permissions": ["policy:read"]})
    assert isinstance(grant.permissions[0], Permission)
    assert grant.model_dump_json() == '{"permissions":["policy:read"]}'
    with pytest.raises(ValidationError) as caught:
        Grant.model_validate({"permissions": ["POLICY"]})
    assert _error_types(caught) == {"permissions.0": "permission_format"}
    schema = Grant.model_json_schema()["properties"]["permissions"]["items"]
    assert schema["pattern"].startswith("^")
    assert schema["maxLength"] == 128

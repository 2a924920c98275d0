"""Missing and invalid settings: one error naming variables, never values."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from aegis.config import AegisSettings
from aegis.core.errors import ConfigurationError


class Database(BaseModel):
    url: SecretStr
    pool_size: int = 5


class Cache(BaseModel):
    url: str = "redis://localhost"


class Service(AegisSettings):
    model_config = SettingsConfigDict(env_prefix="USERS_")

    jwt_secret: SecretStr
    database: Database
    cache: Cache
    port: int = 8000
    hosts: list[int] = Field(default_factory=list)
    mode: Literal["fast", "safe"] = "safe"
    timeout: int | None = Field(default=None, validation_alias="HTTP_TIMEOUT")


def _error(**overrides: Any) -> ConfigurationError:
    with pytest.raises(ConfigurationError) as caught:
        Service.load(**overrides)
    return caught.value


def test_every_missing_setting_is_listed_as_the_variable_to_set() -> None:
    error = _error()
    assert error.code == "CONFIGURATION_ERROR"
    assert error.message == (
        "Service (environment: development) cannot be loaded.\n"
        "Missing required settings; set these environment variables:\n"
        "  - USERS_JWT_SECRET\n"
        "  - USERS_DATABASE__URL\n"
        "  - USERS_CACHE"
    )
    assert error.details == {
        "settings": "Service",
        "environment": "development",
        "missing": ["USERS_JWT_SECRET", "USERS_DATABASE__URL", "USERS_CACHE"],
        "invalid": [],
    }


def test_a_wrong_type_names_the_variable_the_given_type_and_the_expected_type(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("USERS_JWT_SECRET", "x" * 32)
    monkeypatch.setenv("USERS_DATABASE__URL", "postgresql://u:p@db/x")
    monkeypatch.setenv("USERS_CACHE", "{}")
    monkeypatch.setenv("USERS_DATABASE__POOL_SIZE", "lots")
    (tmp_path / ".env").write_text("USERS_PORT=eighty\nUSERS_MODE=turbo\n")
    error = _error(hosts=[1, "two"])
    assert error.message == (
        "Service (environment: development) cannot be loaded.\n"
        "Invalid values:\n"
        "  - USERS_DATABASE__POOL_SIZE (from env var USERS_DATABASE__POOL_SIZE):"
        " expected int, got str: Input should be a valid integer, unable to parse string"
        " as an integer\n"
        "  - USERS_PORT (from file .env): expected int, got str: Input should be a valid"
        " integer, unable to parse string as an integer\n"
        "  - USERS_HOSTS[1] (from init argument): expected list[int], got str: Input should"
        " be a valid integer, unable to parse string as an integer\n"
        "  - USERS_MODE (from file .env): expected Literal['fast', 'safe'], got str: Input"
        " should be 'fast' or 'safe'"
    )
    assert error.details["invalid"][0] == {
        "variable": "USERS_DATABASE__POOL_SIZE",
        "expected": "int",
        "got": "str",
        "reason": "Input should be a valid integer, unable to parse string as an integer",
        "source": "env var USERS_DATABASE__POOL_SIZE",
    }


def test_missing_and_invalid_settings_come_in_one_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USERS_PORT", "-")
    message = _error().message
    assert "Missing required settings" in message
    assert "Invalid values:\n  - USERS_PORT (from env var USERS_PORT)" in message


def test_an_alias_is_reported_under_its_own_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_TIMEOUT", "soon")
    assert "  - HTTP_TIMEOUT (from env var HTTP_TIMEOUT): expected int | None, got str" in (
        _error().message
    )


def test_no_value_ever_appears_in_the_error(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "hunter2-very-secret"
    monkeypatch.setenv("USERS_JWT_SECRET", secret)
    monkeypatch.setenv("USERS_DATABASE__URL", f"postgresql://app:{secret}@db/users")
    monkeypatch.setenv("USERS_DATABASE__POOL_SIZE", secret)
    monkeypatch.setenv("USERS_PORT", secret)
    error = _error(mode=secret)
    rendered = [str(error), repr(error), str(error.details), str(error.to_problem())]
    assert all(secret not in text for text in rendered)
    # The pydantic error, which quotes every input, is not attached as a cause.
    assert error.__cause__ is None
    assert error.__suppress_context__


def test_secrets_are_masked_in_repr_and_dump(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USERS_JWT_SECRET", "hunter2-very-secret")
    monkeypatch.setenv("USERS_DATABASE__URL", "postgresql://app:hunter2-very-secret@db/users")
    settings = Service.load(cache=Cache())
    assert "hunter2" not in repr(settings)
    assert "hunter2" not in str(settings.model_dump_json())
    assert settings.jwt_secret.get_secret_value() == "hunter2-very-secret"


def test_a_model_level_rule_is_reported_for_the_settings_as_a_whole() -> None:
    class Ranged(AegisSettings):
        low: int = 5
        high: int = 1

        @model_validator(mode="after")
        def _ordered(self) -> Ranged:
            if self.low > self.high:
                raise ValueError("low must not exceed high")
            return self

    with pytest.raises(ConfigurationError) as caught:
        Ranged.load()
    assert caught.value.message.endswith(
        "  - (settings): expected a valid value, got dict: Value error, low must not exceed high"
    )


def test_without_a_nested_delimiter_nested_values_are_one_json_variable() -> None:
    class Flat(AegisSettings):
        model_config = SettingsConfigDict(env_prefix="APP_", env_nested_delimiter=None)
        database: Database

    with pytest.raises(ConfigurationError, match=r"variables:\n  - APP_DATABASE$"):
        Flat.load()


def test_case_sensitive_settings_keep_the_variable_case() -> None:
    class Exact(AegisSettings):
        model_config = SettingsConfigDict(env_prefix="App_", case_sensitive=True)
        token: SecretStr

    with pytest.raises(ConfigurationError, match=r"variables:\n  - App_token$"):
        Exact.load()


def test_a_union_is_reported_once_and_an_optional_model_by_its_nested_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Unions(AegisSettings):
        model_config = SettingsConfigDict(env_prefix="USERS_")
        limit: int | float = 1
        replica: Database | None = None

    monkeypatch.setenv("USERS_LIMIT", "lots")
    monkeypatch.setenv("USERS_REPLICA__URL", "postgresql://replica/users")
    monkeypatch.setenv("USERS_REPLICA__POOL_SIZE", "big")
    with pytest.raises(ConfigurationError) as caught:
        Unions.load()
    assert [entry["variable"] for entry in caught.value.details["invalid"]] == [
        "USERS_LIMIT",
        "USERS_REPLICA__POOL_SIZE",
    ]
    assert caught.value.details["invalid"][0]["expected"] == "int | float"


def test_a_missing_model_inside_a_model_lists_its_innermost_variables() -> None:
    class Primary(BaseModel):
        database: Database

    class Nested(AegisSettings):
        model_config = SettingsConfigDict(env_prefix="USERS_")
        primary: Primary

    with pytest.raises(ConfigurationError) as caught:
        Nested.load()
    assert caught.value.details["missing"] == ["USERS_PRIMARY__DATABASE__URL"]

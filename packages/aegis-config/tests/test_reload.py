"""reload(): a new validated object; the old one never changes, even when the new values fail."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from aegis.config import AegisSettings, Environment
from aegis.core.errors import ConfigurationError


class Service(AegisSettings):
    model_config = SettingsConfigDict(env_prefix="USERS_")

    workers: int = 1
    name: str = "users"
    jwt_secret: SecretStr


def test_reload_returns_a_new_object_with_the_new_values(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("USERS_JWT_SECRET", "first-secret-value")
    settings = Service.load()
    monkeypatch.setenv("USERS_JWT_SECRET", "second-secret-value")
    (tmp_path / ".env").write_text("USERS_WORKERS=4\n")
    reloaded = settings.reload()
    assert reloaded is not settings
    assert reloaded.workers == 4
    assert reloaded.jwt_secret.get_secret_value() == "second-secret-value"
    assert reloaded.value_sources()["workers"] == "file .env"
    assert settings.workers == 1
    assert settings.jwt_secret.get_secret_value() == "first-secret-value"
    assert settings.value_sources()["workers"] == "default"


def test_invalid_new_values_raise_and_leave_the_old_settings_untouched(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("USERS_JWT_SECRET", "first-secret-value")
    monkeypatch.setenv("USERS_WORKERS", "2")
    settings = Service.load()
    before = settings.model_dump()
    monkeypatch.setenv("USERS_WORKERS", "many")
    monkeypatch.delenv("USERS_JWT_SECRET")
    with pytest.raises(ConfigurationError) as caught:
        settings.reload()
    assert caught.value.details["missing"] == ["USERS_JWT_SECRET"]
    assert caught.value.details["invalid"][0]["variable"] == "USERS_WORKERS"
    assert settings.model_dump() == before


def test_reload_keeps_the_environment_and_the_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Service.load(environment="staging", jwt_secret="given-in-code", name="override")
    monkeypatch.setenv("AEGIS_ENV", "test")
    monkeypatch.setenv("USERS_NAME", "from-env")
    reloaded = settings.reload()
    assert reloaded.environment is Environment.STAGING
    assert reloaded.name == "override"
    assert reloaded.jwt_secret.get_secret_value() == "given-in-code"


def test_reload_in_production_still_refuses_unsafe_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USERS_JWT_SECRET", "a-long-random-production-secret")
    settings = Service.load(environment="production")
    monkeypatch.setenv("USERS_JWT_SECRET", "changeme")
    with pytest.raises(ConfigurationError, match=r"refuses to start in production"):
        settings.reload()
    assert settings.jwt_secret.get_secret_value() == "a-long-random-production-secret"

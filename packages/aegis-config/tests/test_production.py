"""Production refuses unsafe values, all of them in one error; other environments allow them."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, SecretBytes, SecretStr
from pydantic_settings import SettingsConfigDict

from aegis.config import AegisSettings, Environment
from aegis.core.errors import ConfigurationError


class Web(BaseModel):
    cors_origins: list[str] = ["https://app.example.com"]
    debug: bool = False


class Service(AegisSettings):
    model_config = SettingsConfigDict(env_prefix="USERS_")

    debug: bool = False
    jwt_secret: SecretStr
    signing_key: SecretBytes = SecretBytes(b"dev-signing-key")
    allowed_origins: str = "https://app.example.com"
    cors_max_age: int = 600
    api_token: SecretStr | None = None
    web: Web = Web()


def test_every_unsafe_value_is_listed_in_one_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USERS_DEBUG", "true")
    monkeypatch.setenv("USERS_JWT_SECRET", "changeme")
    monkeypatch.setenv("USERS_ALLOWED_ORIGINS", "https://a.example.com, *")
    monkeypatch.setenv("USERS_WEB__CORS_ORIGINS", '["*"]')
    monkeypatch.setenv("USERS_WEB__DEBUG", "1")
    with pytest.raises(ConfigurationError) as caught:
        Service.load(environment="production")
    assert caught.value.message == (
        "Service refuses to start in production with 6 unsafe setting(s):\n"
        "  - USERS_DEBUG: debug is on; turn it off in production\n"
        "  - USERS_JWT_SECRET: the secret is a well-known placeholder\n"
        "  - USERS_SIGNING_KEY: the secret is the default written in the code\n"
        "  - USERS_ALLOWED_ORIGINS: '*' allows every origin; list the origins that may call"
        " the service\n"
        "  - USERS_WEB__CORS_ORIGINS: '*' allows every origin; list the origins that may call"
        " the service\n"
        "  - USERS_WEB__DEBUG: debug is on; turn it off in production"
    )
    assert caught.value.details["unsafe"][0] == (
        "USERS_DEBUG: debug is on; turn it off in production"
    )
    assert "changeme" not in str(caught.value.details)


def test_an_empty_secret_is_unsafe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USERS_JWT_SECRET", "  ")
    with pytest.raises(ConfigurationError, match=r"USERS_JWT_SECRET: the secret is empty"):
        Service.load(environment="production", signing_key=SecretBytes(b"k" * 32))


def test_safe_values_load_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USERS_JWT_SECRET", "a1" * 16)
    settings = Service.load(
        environment="prod", signing_key=SecretBytes(b"k" * 32), api_token="t0k3n-" * 6
    )
    assert settings.environment is Environment.PRODUCTION
    assert settings.production_problems() == []


@pytest.mark.parametrize("environment", ["development", "staging", "test"])
def test_other_environments_allow_development_values(environment: str) -> None:
    settings = Service.load(environment=environment, debug=True, jwt_secret="changeme")
    assert settings.debug
    assert len(settings.production_problems()) == 3


def test_a_service_adds_its_own_production_rules() -> None:
    class Workers(AegisSettings):
        model_config = SettingsConfigDict(env_prefix="USERS_")
        workers: int = 1

        def production_problems(self) -> list[str]:
            problems = super().production_problems()
            if self.workers < 2:
                problems.append("USERS_WORKERS: run at least 2 workers")
            return problems

    with pytest.raises(ConfigurationError, match=r"USERS_WORKERS: run at least 2 workers$"):
        Workers.load(environment="production")
    assert Workers.load(environment="production", workers=4).workers == 4

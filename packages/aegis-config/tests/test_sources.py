"""Every source, the priority order between them, per-environment files and source attribution."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import pytest
from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import SettingsConfigDict

from aegis.config import AegisSettings, Environment, VaultSecret
from aegis.core.errors import ConfigurationError

if TYPE_CHECKING:
    from conftest import FakeVault


class Database(BaseModel):
    host: str = "localhost"
    port: int = 5432
    password: SecretStr | None = None


class Layered(AegisSettings):
    """One field per source: each source also sets every field below it in priority."""

    model_config = SettingsConfigDict(
        env_prefix="USERS_",
        toml_file="settings.toml",
        yaml_file="settings.yaml",
        secrets_dir="secrets",
        secrets_dir_missing="ok",
    )
    vault_secrets: ClassVar[dict[str, VaultSecret]] = {
        name: VaultSecret("svc") for name in ["init", "env", "vault"]
    }

    init: str = "default"
    env: str = "default"
    vault: str = "default"
    secret: str = "default"
    env_file: str = "default"
    base_file: str = "default"
    untouched: str = "default"


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_sources_are_merged_in_the_documented_priority_order(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, vault: FakeVault
) -> None:
    vault.secrets["secret/svc"] = dict.fromkeys(["init", "env", "vault"], "vault")
    monkeypatch.setenv("VAULT_ADDR", vault.url)
    monkeypatch.setenv("VAULT_TOKEN", "root-token")
    monkeypatch.setenv("USERS_INIT", "env")
    monkeypatch.setenv("USERS_ENV", "env")
    for name in ["init", "env", "vault", "secret"]:
        _write(tmp_path / "secrets" / f"users_{name}", "secret\n")
    _write(
        tmp_path / ".env.staging",
        "".join(f"USERS_{n.upper()}=env_file\n" for n in ["init", "env", "vault", "secret"])
        + "USERS_ENV_FILE=env_file\n",
    )
    _write(
        tmp_path / ".env",
        "".join(
            f"USERS_{n.upper()}=base_file\n"
            for n in ["init", "env", "vault", "secret", "env_file", "base_file"]
        ),
    )

    settings = Layered.load(environment="staging", init="init")

    assert settings.model_dump() == {
        "init": "init",
        "env": "env",
        "vault": "vault",
        "secret": "secret",
        "env_file": "env_file",
        "base_file": "base_file",
        "untouched": "default",
    }
    assert settings.value_sources() == {
        "init": "init argument",
        "env": "env var USERS_ENV",
        "vault": "vault secret/svc#vault",
        "secret": f"secrets dir {tmp_path / 'secrets'}",
        "env_file": "file .env.staging",
        "base_file": "file .env",
        "untouched": "default",
    }


class Service(AegisSettings):
    model_config = SettingsConfigDict(
        env_prefix="USERS_", toml_file="settings.toml", yaml_file="settings.yaml"
    )

    name: str = "default"
    workers: int = 1
    database: Database = Database()


def test_defaults_apply_when_no_source_has_a_value() -> None:
    settings = Service.load()
    assert settings.name == "default"
    assert settings.environment is Environment.DEVELOPMENT
    assert set(settings.value_sources().values()) == {"default"}


@pytest.mark.parametrize("environment", list(Environment))
def test_each_environment_reads_its_own_dotenv_file(
    environment: Environment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for other in Environment:
        _write(tmp_path / f".env.{other}", f"USERS_NAME={other}-dotenv\n")
    monkeypatch.setenv("AEGIS_ENV", environment.value)
    settings = Service.load()
    assert settings.environment is environment
    assert settings.name == f"{environment}-dotenv"
    assert settings.value_sources()["name"] == f"file .env.{environment}"


@pytest.mark.parametrize("environment", list(Environment))
def test_each_environment_reads_its_own_toml_and_yaml_files(
    environment: Environment, tmp_path: Path
) -> None:
    for other in Environment:
        _write(tmp_path / f"settings.{other}.toml", f'name = "{other}-toml"\n')
        _write(tmp_path / f"settings.{other}.yaml", f"workers: {len(other.value)}\n")
    settings = Service.load(environment=environment)
    assert settings.name == f"{environment}-toml"
    assert settings.workers == len(environment.value)
    assert settings.value_sources()["workers"] == f"file settings.{environment}.yaml"


def test_within_a_tier_dotenv_wins_over_toml_and_toml_over_yaml(tmp_path: Path) -> None:
    _write(tmp_path / ".env.test", "USERS_NAME=dotenv\n")
    _write(tmp_path / "settings.test.toml", 'name = "toml"\nworkers = 2\n')
    _write(tmp_path / "settings.test.yaml", "name: yaml\nworkers: 3\ndatabase:\n  port: 7\n")
    settings = Service.load(environment="test")
    assert (settings.name, settings.workers, settings.database.port) == ("dotenv", 2, 7)


def test_the_environment_file_wins_over_every_base_file(tmp_path: Path) -> None:
    _write(tmp_path / "settings.yaml", "name: base-yaml\nworkers: 5\n")
    _write(tmp_path / "settings.toml", 'name = "base-toml"\n')
    _write(tmp_path / ".env", "USERS_NAME=base-dotenv\n")
    _write(tmp_path / "settings.production.yaml", "name: production-yaml\n")
    settings = Service.load(environment="production")
    assert settings.name == "production-yaml"
    assert settings.workers == 5
    assert settings.value_sources()["workers"] == "file settings.yaml"


def test_nested_models_merge_field_by_field_across_sources(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(tmp_path / "settings.toml", '[database]\nhost = "db.internal"\nport = 5433\n')
    monkeypatch.setenv("USERS_DATABASE__PORT", "6432")
    settings = Service.load()
    assert settings.database == Database(host="db.internal", port=6432)
    sources = settings.value_sources()
    assert sources["database.host"] == "file settings.toml"
    assert sources["database.port"] == "env var USERS_DATABASE__PORT"
    assert sources["database.password"] == "default"


def test_a_nested_model_can_be_one_json_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USERS_DATABASE", '{"host": "json-host"}')
    settings = Service.load()
    assert settings.database.host == "json-host"
    assert settings.value_sources()["database.host"] == "env var USERS_DATABASE__HOST"


def test_a_model_instance_given_at_load_wins_for_all_its_fields() -> None:
    settings = Service.load(database=Database(host="given"))
    assert settings.database.host == "given"
    assert settings.value_sources()["database.port"] == "init argument"


def test_of_several_env_files_the_last_one_wins(tmp_path: Path) -> None:
    _write(tmp_path / "a.env", "USERS_NAME=a\nUSERS_WORKERS=4\n")
    _write(tmp_path / "b.env", "USERS_NAME=b\n")
    settings = Service.load(_env_file=("a.env", "b.env"))
    assert (settings.name, settings.workers) == ("b", 4)
    assert settings.value_sources()["name"] == "file b.env"


def test_secret_files_fill_nested_fields(tmp_path: Path) -> None:
    class WithSecrets(Service):
        model_config = SettingsConfigDict(secrets_dir=str(tmp_path / "run"))

    _write(tmp_path / "run" / "users_database__password", "s3cr3t-from-file\n")
    settings = WithSecrets.load()
    assert settings.database.password is not None
    assert settings.database.password.get_secret_value() == "s3cr3t-from-file"
    assert settings.value_sources()["database.password"] == f"secrets dir {tmp_path / 'run'}"


def test_an_alias_is_the_variable_name_without_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    class Aliased(AegisSettings):
        model_config = SettingsConfigDict(env_prefix="USERS_")
        url: str = Field(default="none", validation_alias="DATABASE_URL")

    monkeypatch.setenv("DATABASE_URL", "postgresql://db/users")
    settings = Aliased.load()
    assert settings.url == "postgresql://db/users"
    assert settings.value_sources() == {"url": "env var DATABASE_URL"}


def test_an_invalid_toml_file_is_named_with_the_position(tmp_path: Path) -> None:
    _write(tmp_path / "settings.toml", 'name = "ok"\nworkers = \n')
    with pytest.raises(ConfigurationError, match=r"^settings.toml is not valid TOML: .*line 2"):
        Service.load()


def test_an_invalid_yaml_file_is_named_without_quoting_its_content(tmp_path: Path) -> None:
    _write(tmp_path / "settings.staging.yaml", "name: ok\npassword: [hunter2\n")
    with pytest.raises(ConfigurationError) as caught:
        Service.load(environment="staging")
    assert caught.value.message == "settings.staging.yaml is not valid YAML (line 3)"
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


def test_a_yaml_file_without_pyyaml_says_which_extra_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pydantic_settings.sources.providers import yaml as yaml_provider

    monkeypatch.setattr(yaml_provider, "yaml", None)
    monkeypatch.setitem(sys.modules, "yaml", None)
    _write(tmp_path / "settings.yaml", "name: x\n")
    with pytest.raises(
        ConfigurationError,
        match=r"^settings.yaml needs PyYAML: pip install 'aegis-config\[yaml\]'$",
    ):
        Service.load()


def test_a_secrets_dir_that_is_a_file_is_a_configuration_error(tmp_path: Path) -> None:
    class BadSecrets(Service):
        model_config = SettingsConfigDict(secrets_dir=str(tmp_path / "not-a-dir"))

    _write(tmp_path / "not-a-dir", "x")
    with pytest.raises(ConfigurationError, match=r"^secrets_dir: secrets_dir must reference"):
        BadSecrets.load()


def test_a_variable_that_is_not_json_for_a_nested_model_names_the_field(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("USERS_DATABASE", "{not json")
    with pytest.raises(ConfigurationError) as caught:
        Service.load()
    assert caught.value.message == (
        'cannot read environment variables: error parsing value for field "database"'
        ' from source "EnvSettingsSource"'
    )


def test_a_yaml_file_that_is_not_a_mapping_is_explained(tmp_path: Path) -> None:
    _write(tmp_path / "settings.yaml", "- just\n- a list\n")
    with pytest.raises(ConfigurationError) as caught:
        Service.load()
    assert caught.value.message.startswith("settings.yaml cannot be read (ValueError: ")
    assert caught.value.message.endswith("it must hold a mapping of settings")


def test_constructing_directly_loads_like_load(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AEGIS_ENV", "staging")
    monkeypatch.setenv("USERS_WORKERS", "3")
    settings = Service()
    assert settings.environment is Environment.STAGING
    assert settings.workers == 3
    assert settings.value_sources()["workers"] == "env var USERS_WORKERS"

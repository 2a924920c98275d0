"""Vault KV v2 as a source, against a local HTTP server: auth, caching, failures and timeouts."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Annotated, ClassVar

import pytest
from pydantic import BaseModel, SecretStr
from pydantic_settings import SettingsConfigDict

from aegis.config import AegisSettings, VaultClient, VaultSecret, VaultSettings
from aegis.core.errors import ConfigurationError

if TYPE_CHECKING:
    from conftest import FakeVault


class Database(BaseModel):
    host: str = "localhost"
    password: SecretStr


class Service(AegisSettings):
    model_config = SettingsConfigDict(env_prefix="USERS_")
    vault_secrets: ClassVar[dict[str, VaultSecret]] = {
        "database.password": VaultSecret("user-service/db", "pass", mount="kv")
    }

    jwt_secret: Annotated[SecretStr, VaultSecret("user-service")]
    database: Database


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def stocked(vault: FakeVault, monkeypatch: pytest.MonkeyPatch) -> FakeVault:
    """The local Vault with the service's secrets, and VAULT_ADDR pointing at it."""
    vault.secrets["secret/user-service"] = {"jwt_secret": "jwt-from-vault"}
    vault.secrets["kv/user-service/db"] = {"pass": "db-from-vault"}
    monkeypatch.setenv("VAULT_ADDR", vault.url)
    return vault


def _client(vault: FakeVault, clock: Clock | None = None, **settings: object) -> VaultClient:
    config = VaultSettings.model_validate({"addr": vault.url, "token": "root-token", **settings})
    return VaultClient(config, clock=clock or time.monotonic)


def test_a_token_reads_marked_fields_and_nested_paths(
    stocked: FakeVault, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VAULT_TOKEN", "root-token")
    monkeypatch.setenv("VAULT_NAMESPACE", "team-a")
    settings = Service.load()
    assert settings.jwt_secret.get_secret_value() == "jwt-from-vault"
    assert settings.database.password.get_secret_value() == "db-from-vault"
    assert settings.value_sources() == {
        "jwt_secret": "vault secret/user-service#jwt_secret",
        "database.host": "default",
        "database.password": "vault kv/user-service/db#pass",
    }
    assert stocked.namespaces == ["team-a", "team-a"]


def test_approle_logs_in_once_and_reads_with_its_token(
    stocked: FakeVault, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VAULT_ROLE_ID", "role-1")
    monkeypatch.setenv("VAULT_SECRET_ID", "secret-1")
    settings = Service.load()
    assert settings.jwt_secret.get_secret_value() == "jwt-from-vault"
    assert stocked.requests == [
        "/v1/auth/approle/login",
        "/v1/secret/data/user-service",
        "/v1/kv/data/user-service/db",
    ]


def test_an_approle_token_is_renewed_when_its_lease_ends(stocked: FakeVault) -> None:
    clock = Clock()
    config = VaultSettings.model_validate(
        {"addr": stocked.url, "role_id": "role-1", "secret_id": "secret-1", "cache_ttl": 0}
    )
    client = VaultClient(config, clock=clock)
    client.read("user-service")
    clock.now += 59
    client.read("user-service")
    clock.now += 2
    client.read("user-service")
    assert stocked.requests.count("/v1/auth/approle/login") == 2


def test_wrong_approle_credentials_name_the_variables_to_check(
    stocked: FakeVault, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VAULT_ROLE_ID", "role-1")
    monkeypatch.setenv("VAULT_SECRET_ID", "wrong")
    with pytest.raises(ConfigurationError) as caught:
        Service.load()
    assert caught.value.message == (
        f"Vault at {stocked.url} refused AppRole login (HTTP 400: invalid role or secret ID);"
        " check VAULT_ROLE_ID and VAULT_SECRET_ID"
    )
    assert "wrong" not in str(caught.value.details)


def test_an_approle_login_without_a_token_is_an_error(stocked: FakeVault) -> None:
    stocked.approle_token = None
    config = VaultSettings.model_validate(
        {"addr": stocked.url, "role_id": "role-1", "secret_id": "secret-1"}
    )
    with pytest.raises(ConfigurationError, match=r"answered AppRole login without a token$"):
        VaultClient(config).read("user-service")


def test_a_token_without_access_is_denied_with_a_hint(
    stocked: FakeVault, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VAULT_TOKEN", "revoked")
    with pytest.raises(ConfigurationError) as caught:
        Service.load()
    assert caught.value.message == (
        f"Vault at {stocked.url} refused secret secret/user-service (HTTP 403: permission"
        " denied); check the token's policies (VAULT_TOKEN or the AppRole's)"
    )
    assert caught.value.details == {
        "vault_addr": stocked.url,
        "request": "secret secret/user-service",
        "status": 403,
    }


def test_a_missing_secret_names_its_path(stocked: FakeVault) -> None:
    with pytest.raises(ConfigurationError) as caught:
        _client(stocked).read("nope", mount="kv")
    assert caught.value.message == (
        f"Vault at {stocked.url} refused secret kv/nope (HTTP 404: Not Found);"
        " check the path and VAULT_KV_MOUNT"
    )


def test_a_missing_key_names_the_variable_it_was_for(
    stocked: FakeVault, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VAULT_TOKEN", "root-token")
    stocked.secrets["kv/user-service/db"] = {"password": "x"}
    with pytest.raises(
        ConfigurationError,
        match=r"^Vault secret kv/user-service/db has no key 'pass',"
        r" needed for USERS_DATABASE__PASSWORD$",
    ):
        Service.load()


def test_a_server_error_without_json_is_reported_with_its_status(stocked: FakeVault) -> None:
    stocked.secrets["secret/flaky"] = 502
    with pytest.raises(
        ConfigurationError, match=r"refused secret secret/flaky \(HTTP 502: Bad Gateway\)$"
    ):
        _client(stocked).read("flaky")


def test_something_that_is_not_vault_is_recognised(stocked: FakeVault) -> None:
    stocked.secrets["secret/html"] = b"<html>welcome</html>"
    with pytest.raises(
        ConfigurationError, match=r"answered secret secret/html with something other"
    ):
        _client(stocked).read("html")


def test_a_mount_that_is_not_kv_version_2_is_recognised(stocked: FakeVault) -> None:
    stocked.secrets["secret/v1"] = ["not", "a", "mapping"]
    with pytest.raises(ConfigurationError, match=r"is 'secret' a KV version 2 mount"):
        _client(stocked).read("v1")


def test_secrets_are_cached_until_the_ttl_ends(stocked: FakeVault) -> None:
    clock = Clock()
    client = _client(stocked, clock, cache_ttl=30)
    assert client.read("user-service") == {"jwt_secret": "jwt-from-vault"}
    stocked.secrets["secret/user-service"] = {"jwt_secret": "rotated"}
    clock.now += 29
    assert client.read("user-service") == {"jwt_secret": "jwt-from-vault"}
    clock.now += 2
    assert client.read("user-service") == {"jwt_secret": "rotated"}
    assert stocked.reads() == ["/v1/secret/data/user-service"] * 2


def test_clear_cache_and_a_zero_ttl_read_every_time(stocked: FakeVault) -> None:
    cached = _client(stocked)
    cached.read("user-service")
    cached.clear_cache()
    cached.read("user-service")
    uncached = _client(stocked, cache_ttl=0)
    uncached.read("user-service")
    uncached.read("user-service")
    assert len(stocked.reads()) == 4


def test_an_unreachable_vault_fails_start_up_clearly(
    closed_port_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VAULT_ADDR", closed_port_url)
    monkeypatch.setenv("VAULT_TOKEN", "root-token")
    with pytest.raises(ConfigurationError) as caught:
        Service.load()
    assert caught.value.message.startswith(
        f"Vault at {closed_port_url} is unreachable (secret secret/user-service): "
    )
    assert caught.value.message.endswith("; check VAULT_ADDR")


def test_a_vault_that_never_answers_fails_after_the_timeout(
    silent_vault: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VAULT_ADDR", silent_vault)
    monkeypatch.setenv("VAULT_TOKEN", "root-token")
    monkeypatch.setenv("VAULT_TIMEOUT", "0.5")
    started = time.monotonic()
    with pytest.raises(ConfigurationError) as caught:
        Service.load()
    elapsed = time.monotonic() - started
    assert caught.value.message == (
        f"Vault at {silent_vault} did not answer within 0.5 s (secret secret/user-service);"
        " check VAULT_ADDR and that Vault is up, or raise VAULT_TIMEOUT"
    )
    assert 0.4 < elapsed < 3


def test_without_vault_addr_vault_fields_come_from_other_sources(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("USERS_JWT_SECRET", "jwt-from-env")
    monkeypatch.setenv("USERS_DATABASE__PASSWORD", "db-from-env")
    settings = Service.load()
    assert settings.jwt_secret.get_secret_value() == "jwt-from-env"
    assert VaultClient.from_environment() is None


def test_vault_without_credentials_says_which_variables_to_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VAULT_ADDR", "http://vault.internal:8200")
    with pytest.raises(ConfigurationError) as caught:
        Service.load()
    assert caught.value.message == (
        "Vault at http://vault.internal:8200 needs credentials: set VAULT_TOKEN,"
        " or VAULT_ROLE_ID and VAULT_SECRET_ID for AppRole"
    )


def test_a_client_needs_an_address() -> None:
    with pytest.raises(ConfigurationError, match=r"^Vault is not configured: set VAULT_ADDR$"):
        VaultClient(VaultSettings())


def test_an_invalid_vault_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAULT_ADDR", "http://vault.internal:8200")
    monkeypatch.setenv("VAULT_TIMEOUT", "forever")
    with pytest.raises(ConfigurationError) as caught:
        VaultClient.from_environment()
    assert caught.value.message == (
        "VaultSettings cannot be loaded.\nInvalid values:\n  - VAULT_TIMEOUT: expected float,"
        " got str: Input should be a valid number, unable to parse string as a number"
    )


def test_vault_without_httpx_says_which_extra_to_install(
    stocked: FakeVault, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "httpx", None)
    with pytest.raises(
        ConfigurationError,
        match=r"^settings read from Vault need httpx: pip install 'aegis-config\[vault\]'$",
    ):
        _client(stocked)


def test_an_explicit_client_is_used_and_kept_for_reload(stocked: FakeVault) -> None:
    client = _client(stocked)
    settings = Service.load(vault=client)
    reloaded = settings.reload()
    assert reloaded.database.password.get_secret_value() == "db-from-vault"
    assert client.address == stocked.url
    assert len(stocked.reads()) == 2  # the reload was served from the cache


def test_a_vault_path_for_a_field_that_does_not_exist_is_refused() -> None:
    class Typo(AegisSettings):
        vault_secrets: ClassVar[dict[str, VaultSecret]] = {"databse.password": VaultSecret("x")}

    with pytest.raises(
        ConfigurationError, match=r"^Typo.vault_secrets names 'databse.password', which is not a"
    ):
        Typo.load()

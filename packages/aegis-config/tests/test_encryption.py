"""enc:v1: values: the master key ring, rotation, and decryption while loading settings."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, SecretStr
from pydantic_settings import SettingsConfigDict

from aegis.config import (
    ENCRYPTED_PREFIX,
    AegisSettings,
    decrypt_value,
    encrypt_value,
    generate_master_key,
    is_encrypted,
    master_key_ring,
)
from aegis.core.errors import ConfigurationError
from aegis.core.utils.security import Encryptor, generate_key

OLD = f"old:{generate_key()}"
NEW = f"new:{generate_key()}"
RING = master_key_ring(f"{NEW},{OLD}")


class Upstream(BaseModel):
    tokens: list[SecretStr] = []


class Service(AegisSettings):
    model_config = SettingsConfigDict(env_prefix="USERS_", yaml_file="settings.yaml")

    api_key: SecretStr | None = None
    upstream: Upstream = Upstream()


def test_a_value_round_trips_through_the_master_key(master_key: str) -> None:
    encrypted = encrypt_value("s3cret")
    assert encrypted.startswith("enc:v1:v1.k1.")
    assert is_encrypted(encrypted)
    assert decrypt_value(encrypted) == "s3cret"


@given(st.text())
def test_any_text_round_trips(plaintext: str) -> None:
    assert decrypt_value(encrypt_value(plaintext, key_ring=RING), key_ring=RING) == plaintext


def test_the_newest_key_encrypts_and_every_key_decrypts() -> None:
    made_with_old = encrypt_value("legacy", key_ring=master_key_ring(OLD))
    assert RING.key_id(made_with_old.removeprefix(ENCRYPTED_PREFIX)) == "old"
    assert decrypt_value(made_with_old, key_ring=RING) == "legacy"
    assert ".new." in encrypt_value("fresh", key_ring=RING)


def test_settings_decrypt_values_made_with_a_rotated_key(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AEGIS_MASTER_KEY", OLD)
    api_key = encrypt_value("api-key-plain")
    first_token = encrypt_value("token-1")
    monkeypatch.setenv("AEGIS_MASTER_KEY", f"{NEW},{OLD}")
    second_token = encrypt_value("token-2")
    monkeypatch.setenv("USERS_API_KEY", api_key)
    (tmp_path / "settings.yaml").write_text(
        f"upstream:\n  tokens:\n    - {first_token}\n    - {second_token}\n"
    )
    settings = Service.load()
    assert settings.api_key is not None
    assert settings.api_key.get_secret_value() == "api-key-plain"
    assert [t.get_secret_value() for t in settings.upstream.tokens] == ["token-1", "token-2"]
    assert settings.value_sources() == {
        "api_key": "env var USERS_API_KEY, decrypted",
        "upstream.tokens": "file settings.yaml, decrypted",
    }


def test_a_value_whose_key_left_the_ring_names_the_variable_and_key_id(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("USERS_API_KEY", encrypt_value("x", key_ring=master_key_ring(OLD)))
    monkeypatch.setenv("AEGIS_MASTER_KEY", NEW)
    with pytest.raises(ConfigurationError) as caught:
        Service.load()
    assert caught.value.message == (
        "USERS_API_KEY (from env var USERS_API_KEY): encrypted value (key id 'old') cannot be"
        " decrypted: token was encrypted with a key this service does not have (was a key"
        " removed from the key ring too early?); add its key to AEGIS_MASTER_KEY"
    )
    assert caught.value.details == {"key_id": "old", "variable": "USERS_API_KEY"}


def test_an_altered_value_is_refused() -> None:
    encrypted = encrypt_value("x", key_ring=RING)
    altered = encrypted[:-2] + ("AA" if not encrypted.endswith("AA") else "BB")
    with pytest.raises(ConfigurationError, match=r"failed authentication.*; it was altered"):
        decrypt_value(altered, key_ring=RING)


def test_a_malformed_token_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"re-create it with aegis-config encrypt$"):
        decrypt_value("enc:v1:garbage", key_ring=RING)


def test_another_format_version_is_refused_without_echoing_the_value() -> None:
    with pytest.raises(ConfigurationError) as caught:
        decrypt_value("enc:v9:hunter2", key_ring=RING)
    assert caught.value.message == (
        "encrypted value does not start with enc:v1:, the only format this version of"
        " aegis-config reads"
    )


def test_an_encrypted_value_without_a_master_key_says_what_to_set(
    tmp_path: Path,
) -> None:
    token = encrypt_value("x", key_ring=RING)
    (tmp_path / ".env").write_text(f"USERS_API_KEY={token}\n")
    with pytest.raises(ConfigurationError) as caught:
        Service.load()
    assert caught.value.message == (
        "USERS_API_KEY (from file .env): AEGIS_MASTER_KEY is not set; it holds the keys that"
        " decrypt enc:v1: values (make one with: aegis-config generate-key)"
    )


@pytest.mark.parametrize(
    ("ring", "message"),
    [
        (
            f"{NEW},{generate_key()}",
            "AEGIS_MASTER_KEY entry 2 is not <key id>:<key>; write e.g. 2025-06:<key from"
            " aegis-config generate-key>",
        ),
        (f"{NEW},{NEW}", "AEGIS_MASTER_KEY names key id 'new' twice"),
        ("short:abcd", "encryption key 'short' must be 32 bytes (AES-256), got 3"),
    ],
    # the rings hold fresh random keys: ids that name the case, the same in every process
    ids=["entry-without-key-id", "key-id-twice", "short-key"],
)
def test_a_malformed_key_ring_is_explained_without_the_keys(ring: str, message: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        master_key_ring(ring)
    assert caught.value.message.startswith(message)
    assert NEW.partition(":")[2] not in caught.value.message


def test_a_generated_entry_is_ready_for_the_key_ring() -> None:
    entry = generate_master_key("2025-06")
    assert entry.startswith("2025-06:")
    ring = master_key_ring(entry)
    assert ring.primary_key_id == "2025-06"
    with pytest.raises(ConfigurationError, match=r"must be 1-64 characters"):
        generate_master_key("bad id!")


def test_a_value_that_is_not_utf8_text_is_refused() -> None:
    key = generate_key()
    raw = Encryptor({"k": key}).encrypt(b"\xff\xfe", associated_data=b"aegis-config")
    with pytest.raises(ConfigurationError, match=r"does not hold UTF-8 text"):
        decrypt_value(ENCRYPTED_PREFIX + raw, key_ring=master_key_ring(f"k:{key}"))


def test_without_the_crypto_extra_the_error_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "aegis.core.utils.security", None)
    with pytest.raises(ConfigurationError, match=r"pip install 'aegis-config\[crypto\]'$"):
        master_key_ring(NEW)


def test_plain_values_are_not_encrypted() -> None:
    assert not is_encrypted("enc")
    assert not is_encrypted(42)
    assert is_encrypted("enc:v2:x")

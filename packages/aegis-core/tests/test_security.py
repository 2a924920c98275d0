"""Tests for aegis.core.utils.security: password hashing, encryption, tokens."""

from __future__ import annotations

import base64
from collections.abc import Callable

import argon2
import bcrypt
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretBytes, SecretStr

from aegis.core.errors import ConfigurationError, InvalidInputError
from aegis.core.utils.security import (
    OWASP_MEMORY_COST,
    OWASP_PARALLELISM,
    OWASP_TIME_COST,
    Encryptor,
    PasswordHasher,
    bcrypt_cost,
    constant_time_equals,
    generate_key,
    hash_password,
    needs_rehash,
    token_hex,
    token_urlsafe,
    verify_password,
)

# Light parameters keep the suite fast; the defaults are checked separately.
FAST = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
KEY_1 = generate_key()
KEY_2 = generate_key()
BOX = Encryptor({"k1": KEY_1, "k2": KEY_2})


# --- passwords ------------------------------------------------------------------------------------


def test_default_parameters_are_the_owasp_argon2id_minimum() -> None:
    params = PasswordHasher().parameters
    assert (params.memory_cost, params.time_cost, params.parallelism) == (19_456, 2, 1)
    assert (OWASP_MEMORY_COST, OWASP_TIME_COST, OWASP_PARALLELISM) == (19_456, 2, 1)
    assert params.type.name == "ID"
    assert (params.salt_len, params.hash_len) == (16, 32)


def test_module_functions_hash_with_owasp_parameters_and_verify() -> None:
    stored = hash_password("correct horse battery staple")
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert verify_password("correct horse battery staple", stored)
    assert not verify_password("Correct horse battery staple", stored)
    assert not needs_rehash(stored)


def test_wrong_password_answers_false_without_raising() -> None:
    stored = FAST.hash("right")
    assert FAST.verify("right", stored)
    assert FAST.verify("wrong", stored) is False
    assert FAST.verify("", stored) is False


def test_same_password_hashes_differently_each_time() -> None:
    assert FAST.hash("same") != FAST.hash("same")


def test_hash_with_weaker_parameters_needs_rehash() -> None:
    weak = FAST.hash("pw")
    assert PasswordHasher().needs_rehash(weak)
    assert not FAST.needs_rehash(weak)


def test_argon2i_hash_still_verifies_but_needs_rehash() -> None:
    legacy = argon2.PasswordHasher(
        time_cost=1, memory_cost=8, parallelism=1, type=argon2.Type.I
    ).hash("pw")
    assert FAST.verify("pw", legacy)
    assert FAST.needs_rehash(legacy)


@pytest.mark.parametrize("prefix", ["$2a$", "$2b$", "$2y$"])
def test_legacy_bcrypt_hash_verifies_and_needs_rehash(prefix: str) -> None:
    made = bcrypt.hashpw(b"old password", bcrypt.gensalt(rounds=4)).decode()
    legacy = prefix + made[4:]
    assert FAST.verify("old password", legacy)
    assert not FAST.verify("new password", legacy)
    assert FAST.needs_rehash(legacy)


def test_bcrypt_hash_of_long_password_verifies_as_bcrypt_truncated_it() -> None:
    long_password = "x" * 100
    legacy = bcrypt.hashpw(long_password.encode()[:72], bcrypt.gensalt(rounds=4)).decode()
    assert FAST.verify(long_password, legacy)


@pytest.mark.parametrize(
    "bad_hash",
    ["", "plain-text", "$argon2id$garbage", "$argon2id$v=19$m=8,t=1,p=1$AAAA$@@@@", "$2b$04$nope"],
)
def test_malformed_hash_is_refused_naming_the_field_without_echoing_it(bad_hash: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        FAST.verify("pw", bad_hash)
    assert caught.value.field == "password_hash"
    assert caught.value.errors[0].type == "format"
    assert caught.value.__cause__ is not None
    if bad_hash:
        assert bad_hash not in caught.value.message


def test_needs_rehash_refuses_a_malformed_hash() -> None:
    with pytest.raises(InvalidInputError, match="well-formed"):
        FAST.needs_rehash("$argon2id$garbage")


# --- encryption -----------------------------------------------------------------------------------


def test_encrypt_uses_the_last_key_and_decrypts_round_trip() -> None:
    token = BOX.encrypt(b"secret data")
    assert token.startswith("v1.k2.")
    assert BOX.primary_key_id == "k2"
    assert BOX.key_id(token) == "k2"
    assert BOX.decrypt(token) == b"secret data"


def test_text_plaintext_is_utf8_encoded() -> None:
    assert BOX.decrypt(BOX.encrypt("naïve ✓")).decode() == "naïve ✓"


def test_same_plaintext_encrypts_to_different_tokens() -> None:
    assert BOX.encrypt(b"x") != BOX.encrypt(b"x")


def test_associated_data_must_match_to_decrypt() -> None:
    token = BOX.encrypt(b"card", associated_data=b"user:1")
    assert BOX.decrypt(token, associated_data=b"user:1") == b"card"
    with pytest.raises(InvalidInputError) as caught:
        BOX.decrypt(token, associated_data=b"user:2")
    assert caught.value.field == "token"
    assert caught.value.errors[0].type == "authentication"
    assert caught.value.status == 422


def test_rotation_old_tokens_decrypt_and_are_reencrypted_with_the_new_key() -> None:
    old_box = Encryptor({"k1": KEY_1})
    old_token = old_box.encrypt(b"payload", associated_data=b"ctx")
    assert BOX.needs_reencrypt(old_token)
    assert BOX.decrypt(old_token, associated_data=b"ctx") == b"payload"
    fresh = BOX.reencrypt(old_token, associated_data=b"ctx")
    assert BOX.key_id(fresh) == "k2"
    assert not BOX.needs_reencrypt(fresh)
    assert BOX.decrypt(fresh, associated_data=b"ctx") == b"payload"


def test_explicit_primary_key_is_used_for_encryption() -> None:
    box = Encryptor({"k1": KEY_1, "k2": KEY_2}, primary="k1")
    assert box.key_id(box.encrypt(b"x")) == "k1"


def test_token_from_a_removed_key_is_refused_with_its_key_id() -> None:
    token = BOX.encrypt(b"x")
    only_old = Encryptor({"k1": KEY_1})
    with pytest.raises(InvalidInputError) as caught:
        only_old.decrypt(token)
    assert caught.value.errors[0].type == "key_id"
    assert caught.value.to_problem()["key_id"] == "k2"


@pytest.mark.parametrize(
    "token",
    [
        "",
        "garbage",
        "v2.k1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "v1.k1",
        "v1.k1.a.b",
        "v1.k 1.AAAA",
        "v1.k1.AAAA",
        "v1.k1.!!!!AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ],
)
def test_malformed_token_is_refused_as_format_error(token: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        BOX.decrypt(token)
    assert caught.value.field == "token"
    assert caught.value.errors[0].type == "format"


def test_keys_may_be_raw_bytes_or_secret_values() -> None:
    raw = base64.urlsafe_b64decode(KEY_1)
    token = Encryptor({"k1": raw}).encrypt(b"x")
    assert Encryptor({"k1": SecretStr(KEY_1)}).decrypt(token) == b"x"
    assert Encryptor({"k1": SecretBytes(raw)}).decrypt(token) == b"x"
    assert Encryptor({"k1": KEY_1.rstrip("=")}).decrypt(token) == b"x"


def test_generate_key_makes_distinct_256_bit_keys() -> None:
    keys = {generate_key() for _ in range(10)}
    assert len(keys) == 10
    assert all(len(base64.urlsafe_b64decode(key)) == 32 for key in keys)


@pytest.mark.parametrize(
    ("keys", "primary", "message"),
    [
        ({}, None, "at least one key"),
        ({"bad id!": KEY_1}, None, "key id"),
        ({"k1": generate_key()[:20]}, None, "must be 32 bytes"),
        ({"k1": b"short"}, None, "must be 32 bytes"),
        ({"k1": "not base64 ***"}, None, "base64url"),
        ({"k1": KEY_1}, "k9", "primary key id"),
    ],
)
def test_bad_key_configuration_is_a_configuration_error_without_the_key(
    keys: dict[str, str | bytes], primary: str | None, message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message) as caught:
        Encryptor(keys, primary=primary)
    assert KEY_1 not in str(caught.value)


@given(plaintext=st.binary(max_size=2048), associated=st.binary(max_size=64))
def test_encryption_round_trips_any_bytes(plaintext: bytes, associated: bytes) -> None:
    token = BOX.encrypt(plaintext, associated_data=associated)
    assert BOX.decrypt(token, associated_data=associated) == plaintext


@given(
    plaintext=st.binary(max_size=256),
    position=st.integers(min_value=0),
    replacement=st.characters(codec="ascii"),
)
def test_any_single_character_change_to_a_token_is_rejected(
    plaintext: bytes, position: int, replacement: str
) -> None:
    token = BOX.encrypt(plaintext)
    index = position % len(token)
    if token[index] == replacement:
        replacement = "A" if replacement != "A" else "B"
    tampered = token[:index] + replacement + token[index + 1 :]
    with pytest.raises(InvalidInputError):
        BOX.decrypt(tampered)


@given(
    plaintext=st.binary(max_size=256), position=st.integers(min_value=0), flip=st.integers(1, 255)
)
def test_any_single_byte_change_to_the_sealed_data_is_rejected(
    plaintext: bytes, position: int, flip: int
) -> None:
    header, encoded = BOX.encrypt(plaintext).rsplit(".", 1)
    raw = bytearray(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    raw[position % len(raw)] ^= flip
    tampered = header + "." + base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    with pytest.raises(InvalidInputError) as caught:
        BOX.decrypt(tampered)
    assert caught.value.errors[0].type == "authentication"


# --- tokens and comparison ------------------------------------------------------------------------


def test_random_tokens_have_the_requested_size_and_differ() -> None:
    assert len(token_hex()) == 64
    assert len(token_hex(16)) == 32
    assert len(base64.urlsafe_b64decode(token_urlsafe() + "=")) == 32
    assert token_urlsafe() != token_urlsafe()
    assert set(token_urlsafe(48)) <= set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    )


@pytest.mark.parametrize("make", [token_hex, token_urlsafe])
def test_tokens_under_128_bits_are_refused(make: Callable[[int], str]) -> None:
    with pytest.raises(InvalidInputError) as caught:
        make(8)
    assert caught.value.field == "nbytes"
    assert caught.value.errors[0].type == "min"


def test_constant_time_equals_compares_text_and_bytes() -> None:
    assert constant_time_equals("abc", "abc")
    assert constant_time_equals("abc", b"abc")
    assert constant_time_equals(b"abc", "abc")
    assert constant_time_equals("clé", "clé")
    assert not constant_time_equals("abc", "abd")
    assert not constant_time_equals("abc", "abcd")
    assert not constant_time_equals(b"", "x")


def test_bcrypt_cost_reads_the_cost_of_a_well_formed_bcrypt_hash_only() -> None:
    stored = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=5)).decode()
    assert bcrypt_cost(stored) == 5
    assert bcrypt_cost(stored[:-1]) is None  # truncated
    assert bcrypt_cost("$2x$05$" + stored[7:]) is None  # not a bcrypt variant
    assert bcrypt_cost(hash_password("pw")) is None  # argon2

"""Passwords: argon2id off the event loop, length cap, absurd hashes, equal work, rehash."""

from __future__ import annotations

import threading

import bcrypt
import pytest
from pydantic import SecretStr

from aegis.auth import PasswordService
from aegis.core.errors import InvalidInputError
from aegis.core.utils.security import PasswordHasher

pytestmark = pytest.mark.anyio


class CountingHasher(PasswordHasher):
    """Records how many verifications ran, and on which threads."""

    def __init__(self, **parameters: int) -> None:
        super().__init__(**{"memory_cost": 1024, "time_cost": 1, **parameters})
        self.verifications = 0
        self.threads: set[int] = set()

    def verify(self, password: str, password_hash: str) -> bool:
        self.verifications += 1
        self.threads.add(threading.get_ident())
        return super().verify(password, password_hash)


async def test_hash_and_verify_run_off_the_event_loop() -> None:
    hasher = CountingHasher()
    passwords = PasswordService(hasher)
    stored = await passwords.hash(SecretStr("correct horse battery staple"))
    assert stored.startswith("$argon2id$")
    assert await passwords.verify("correct horse battery staple", stored) == (
        await passwords.verify(SecretStr("correct horse battery staple"), stored)
    )
    assert (await passwords.verify("wrong", stored)).valid is False
    assert threading.get_ident() not in hasher.threads


async def test_unknown_user_costs_the_same_argon2_verification() -> None:
    hasher = CountingHasher()
    passwords = PasswordService(hasher)
    assert (await passwords.verify("anything", None)).valid is False
    assert hasher.verifications == 1  # against a dummy hash with the same parameters


async def test_length_cap_applies_before_hashing() -> None:
    hasher = CountingHasher()
    passwords = PasswordService(hasher, max_length=64)
    with pytest.raises(InvalidInputError) as raised:
        await passwords.hash("x" * 65)
    assert (raised.value.field, raised.value.errors[0].type) == ("password", "max_length")
    with pytest.raises(InvalidInputError, match="required"):
        await passwords.hash("")
    stored = await passwords.hash("x" * 64)
    assert (await passwords.verify("x" * 10_000, stored)).valid is False
    assert (await passwords.verify("", stored)).valid is False


@pytest.mark.parametrize(
    "stored",
    [
        "not a hash",
        "$argon2id$v=19$m=4194304,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNo",
        "$argon2id$v=19$m=19456,t=100000,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNo",
        "$argon2id$v=19$m=19456,t=2,p=255$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNo",
        "$argon2id$v=19$m=19456,t=2,p=1$$",
        "$argon2id$" + "x" * 600,
        "$2b$31$" + "a" * 53,
        "$2b$12$short",
        "$argon2id$v=19$m=1024,t=1,p=1$ü$x",
    ],
)
async def test_malformed_or_absurd_stored_hashes_are_refused_not_raised(
    stored: str, caplog: pytest.LogCaptureFixture
) -> None:
    passwords = PasswordService(CountingHasher())
    assert (await passwords.verify("password", stored)).valid is False
    assert "login refused" in caplog.text or "malformed" in caplog.text


async def test_corrupt_hash_that_looks_sane_is_refused_without_error() -> None:
    passwords = PasswordService(CountingHasher())
    stored = await passwords.hash("password")
    corrupt = stored[:-4] + "!!!!"
    assert (await passwords.verify("password", corrupt)).valid is False


async def test_outdated_hash_is_replaced_after_a_successful_login() -> None:
    weak = await PasswordService(CountingHasher(time_cost=1)).hash("password")
    passwords = PasswordService(CountingHasher(time_cost=2))
    check = await passwords.verify("password", weak)
    assert check.valid
    assert check.new_hash is not None
    assert "t=2" in check.new_hash
    assert (await passwords.verify("password", check.new_hash)).new_hash is None
    legacy = bcrypt.hashpw(b"password", bcrypt.gensalt(rounds=4)).decode()
    upgraded = await passwords.verify("password", legacy)
    assert upgraded.valid
    assert upgraded.new_hash is not None
    assert upgraded.new_hash.startswith("$argon2id$")
    assert (await passwords.verify("wrong", weak)).new_hash is None


class TestTextWithoutUTF8Form:
    """A lone surrogate ("\\ud800") has no UTF-8 form: hash refuses it, verify never raises."""

    @pytest.mark.parametrize("password", ["\ud800", "pass\udfffword", "x" * 10 + "\udc80"])
    async def test_verify_answers_no_match_for_a_lone_surrogate(self, password: str) -> None:
        """It fails like a wrong password, with the same argon2 work, known user or not."""
        hasher = CountingHasher()
        passwords = PasswordService(hasher)
        stored = await passwords.hash("correct horse battery staple")
        assert (await passwords.verify(password, stored)).valid is False
        assert (await passwords.verify(SecretStr(password), None)).valid is False
        assert hasher.verifications == 2

    async def test_hash_refuses_a_lone_surrogate_naming_field_and_rule(self) -> None:
        """An InvalidInputError (422) the caller can show, not a UnicodeEncodeError (500)."""
        passwords = PasswordService(CountingHasher())
        with pytest.raises(InvalidInputError) as raised:
            await passwords.hash("Correct-Horse-\ud800")
        assert (raised.value.field, raised.value.errors[0].type) == ("password", "unicode")

    def test_the_core_hasher_refuses_and_never_matches_a_lone_surrogate(self) -> None:
        """aegis.core's PasswordHasher, under the service, keeps the same promise."""
        hasher = PasswordHasher(memory_cost=1024, time_cost=1)
        with pytest.raises(InvalidInputError, match="Unicode"):
            hasher.hash("\ud800")
        bcrypt_hash = bcrypt.hashpw(b"secret", bcrypt.gensalt(rounds=4)).decode()
        for stored in (hasher.hash("secret"), bcrypt_hash):
            assert hasher.verify("\ud800", stored) is False
            assert hasher.verify("secret", stored) is True

    async def test_nul_and_other_valid_text_hash_and_match_as_usual(self) -> None:
        """Only text without a UTF-8 form is refused; NUL, RTL marks and emoji are passwords."""
        passwords = PasswordService(CountingHasher())
        for password in ("with\x00nul", "\u202eevil\u202c", "🔑" * 5):
            assert (await passwords.verify(password, await passwords.hash(password))).valid

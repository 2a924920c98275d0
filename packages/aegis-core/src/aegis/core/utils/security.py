"""Password hashing, authenticated encryption with key rotation, and secure random tokens.

Needs the ``crypto`` extra (argon2-cffi, bcrypt, cryptography): ``pip install aegis-core[crypto]``.

Example:
    >>> stored = hash_password("correct horse battery staple")
    >>> verify_password("correct horse battery staple", stored)
    True
"""

from __future__ import annotations

import base64
import binascii
import functools
import hmac
import os
import re
import secrets
from collections.abc import Mapping

from pydantic import SecretBytes, SecretStr

from aegis.core.errors import ConfigurationError, InvalidInputError
from aegis.core.utils.lazy import extra_required

# Without the extra, say which one to install instead of a bare "No module named".
with extra_required(
    __name__, dict.fromkeys(["argon2", "bcrypt", "cryptography"], "aegis-core[crypto]")
):
    import argon2
    import bcrypt
    from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

# OWASP Password Storage Cheat Sheet, "Argon2id": m=19 MiB, t=2, p=1 is the first of its
# equivalent minimum configurations. It costs ~20 ms and 19 MiB per hash, which a web service can
# afford under concurrent logins; RFC 9106's "low memory" choice (64 MiB, t=3, p=4) is stronger
# and can be had with PasswordHasher(memory_cost=65536, time_cost=3, parallelism=4).
OWASP_MEMORY_COST = 19_456
"""Default argon2id memory cost in KiB (19 MiB, OWASP Password Storage Cheat Sheet)."""
OWASP_TIME_COST = 2
"""Default argon2id number of passes (OWASP Password Storage Cheat Sheet)."""
OWASP_PARALLELISM = 1
"""Default argon2id degree of parallelism (OWASP Password Storage Cheat Sheet)."""

_BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2y$")
_BCRYPT_HASH = re.compile(r"\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}")  # cost, then salt and hash
# bcrypt only ever looked at the first 72 bytes; bcrypt>=5 refuses longer input instead of
# truncating, so legacy hashes of long passwords are verified the way they were made.
_BCRYPT_MAX_BYTES = 72
_MIN_TOKEN_BYTES = 16  # 128 bits: the floor below which a random token can be guessed


class PasswordHasher:
    """Hash passwords with argon2id and verify argon2 or legacy bcrypt hashes.

    The defaults are the OWASP minimum for argon2id (m=19 MiB, t=2, p=1, 16-byte salt, 32-byte
    hash). Hashing takes tens of milliseconds of CPU: in async code call it through
    ``await asyncio.to_thread(hasher.hash, password)``.

    Args:
        time_cost: number of passes over the memory.
        memory_cost: memory in KiB.
        parallelism: number of lanes.
        hash_len: length of the hash in bytes.
        salt_len: length of the random salt in bytes.

    Example:
        >>> hasher = PasswordHasher()
        >>> stored = hasher.hash("s3cret-passphrase")
        >>> hasher.verify("s3cret-passphrase", stored), hasher.needs_rehash(stored)
        (True, False)
    """

    def __init__(
        self,
        *,
        time_cost: int = OWASP_TIME_COST,
        memory_cost: int = OWASP_MEMORY_COST,
        parallelism: int = OWASP_PARALLELISM,
        hash_len: int = 32,
        salt_len: int = 16,
    ) -> None:
        self._parameters = argon2.Parameters(
            type=argon2.Type.ID,
            version=argon2.low_level.ARGON2_VERSION,
            salt_len=salt_len,
            hash_len=hash_len,
            time_cost=time_cost,
            memory_cost=memory_cost,
            parallelism=parallelism,
        )
        self._hasher = argon2.PasswordHasher.from_parameters(self._parameters)

    @property
    def parameters(self) -> argon2.Parameters:
        """The argon2 parameters new hashes are made with."""
        return self._parameters

    def hash(self, password: str) -> str:
        r"""Return the argon2id hash of ``password`` in PHC string format (salt included).

        Raises:
            InvalidInputError: ``password`` is not valid Unicode text (a lone surrogate such as
                ``"\ud800"`` has no UTF-8 form): field ``password``, rule ``unicode``.
        """
        try:
            encoded = password.encode()
        except UnicodeEncodeError:
            raise InvalidInputError(
                "must be valid Unicode text: lone surrogates (U+D800-U+DFFF) cannot be hashed",
                field="password",
                rule="unicode",
            ) from None
        return self._hasher.hash(encoded)

    def verify(self, password: str, password_hash: str) -> bool:
        """Tell whether ``password`` matches ``password_hash`` (argon2 or bcrypt ``$2a/b/y$``).

        A wrong password answers ``False``; it never raises. A password that is not valid
        Unicode text (a lone surrogate) cannot have been hashed, so it is simply wrong.

        Raises:
            InvalidInputError: ``password_hash`` is not a well-formed argon2 or bcrypt hash
                (field ``password_hash``, rule ``format``): stored data is corrupt.
        """
        try:
            encoded = password.encode()
        except UnicodeEncodeError:
            return False
        if _is_bcrypt(password_hash):
            try:
                return bcrypt.checkpw(encoded[:_BCRYPT_MAX_BYTES], password_hash.encode("ascii"))
            except (ValueError, UnicodeEncodeError) as exc:
                raise _malformed_hash() from exc
        try:
            return self._hasher.verify(password_hash, encoded)
        except VerifyMismatchError:
            return False
        except (VerificationError, InvalidHashError) as exc:
            raise _malformed_hash() from exc

    def needs_rehash(self, password_hash: str) -> bool:
        """Tell whether ``password_hash`` should be replaced by a fresh :meth:`hash`.

        True for every bcrypt hash and for argon2 hashes made with other parameters than this
        hasher's (weaker ones after a policy upgrade). Rehash right after a successful login,
        the only moment the plain password is known.

        Raises:
            InvalidInputError: ``password_hash`` is not a well-formed argon2 or bcrypt hash.
        """
        if _is_bcrypt(password_hash):
            return True
        try:
            return self._hasher.check_needs_rehash(password_hash)
        except InvalidHashError as exc:
            raise _malformed_hash() from exc


def _is_bcrypt(password_hash: str) -> bool:
    return password_hash.startswith(_BCRYPT_PREFIXES)


def bcrypt_cost(password_hash: str) -> int | None:
    """Return the cost factor of a well-formed bcrypt hash ($2a$, $2b$ or $2y$), else ``None``.

    For refusing stored hashes that would take absurdly long to verify before verifying them.

    Example:
        >>> bcrypt_cost("$2b$12$" + "a" * 53)
        12
        >>> bcrypt_cost("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA") is None
        True
    """
    match = _BCRYPT_HASH.fullmatch(password_hash)
    return None if match is None else int(match.group(1))


def _malformed_hash() -> InvalidInputError:
    # The hash itself is never put in the message: it is secret-adjacent and useless to a reader.
    return InvalidInputError(
        "password hash is not a well-formed argon2 or bcrypt ($2a$/$2b$/$2y$) hash",
        field="password_hash",
        rule="format",
    )


@functools.cache
def _default_hasher() -> PasswordHasher:
    return PasswordHasher()


def hash_password(password: str) -> str:
    """Hash ``password`` with argon2id and the OWASP parameters; see :class:`PasswordHasher`."""
    return _default_hasher().hash(password)


def verify_password(password: str, password_hash: str) -> bool:
    """Tell whether ``password`` matches an argon2 or bcrypt hash (:meth:`PasswordHasher.verify`).

    Raises:
        InvalidInputError: ``password_hash`` is malformed (rule ``format``).
    """
    return _default_hasher().verify(password, password_hash)


def needs_rehash(password_hash: str) -> bool:
    """Tell whether a hash differs from the OWASP defaults (:meth:`PasswordHasher.needs_rehash`).

    Raises:
        InvalidInputError: ``password_hash`` is malformed (rule ``format``).
    """
    return _default_hasher().needs_rehash(password_hash)


# --- authenticated encryption -------------------------------------------------------------------

KeyMaterial = str | bytes | SecretStr | SecretBytes
"""An AES-256 key: base64url text (as :func:`generate_key` makes) or 32 raw bytes."""

_TOKEN_VERSION = "v1"  # noqa: S105 - the token format version, not a secret
_KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_KEY_BYTES = 32
_NONCE_BYTES = 12  # the 96-bit nonce AES-GCM is specified for (NIST SP 800-38D)
_TAG_BYTES = 16


def generate_key() -> str:
    """Return a new random AES-256 key as base64url text, ready for an environment variable."""
    return base64.urlsafe_b64encode(os.urandom(_KEY_BYTES)).decode("ascii")


class Encryptor:
    """AES-256-GCM encryption with named keys: encrypt with the primary key, decrypt with any.

    A token reads ``v1.<key id>.<base64url(nonce | ciphertext | tag)>``; the key id tells
    :meth:`decrypt` which key to use, so keys rotate without re-encrypting stored data at once:
    add the new key last (it becomes primary), keep the old ones until :meth:`needs_reencrypt`
    finds no token that uses them. The version and key id are authenticated with the ciphertext.

    Nonces are random, so one key should encrypt well under 2**32 messages (NIST SP 800-38D);
    rotate long before that.

    Args:
        keys: key id -> key. Ids are 1-64 characters of ``A-Z a-z 0-9 _ -``.
        primary: id of the key that encrypts; defaults to the last key in ``keys``.

    Raises:
        ConfigurationError: no keys, a bad key id, a key that is not 32 bytes, or an unknown
            ``primary``. The message names the key id, never the key.

    Example:
        >>> box = Encryptor({"2025-01": generate_key()})
        >>> token = box.encrypt(b"4111 1111 1111 1111", associated_data=b"user:42")
        >>> box.decrypt(token, associated_data=b"user:42")
        b'4111 1111 1111 1111'
    """

    def __init__(self, keys: Mapping[str, KeyMaterial], *, primary: str | None = None) -> None:
        if not keys:
            raise ConfigurationError(
                "Encryptor needs at least one key; make one with generate_key()"
            )
        self._ciphers = {key_id: AESGCM(_decode_key(key_id, key)) for key_id, key in keys.items()}
        self._primary = primary if primary is not None else list(keys)[-1]
        if self._primary not in self._ciphers:
            raise ConfigurationError(
                f"primary key id {self._primary!r} is not one of the keys {sorted(self._ciphers)}"
            )

    @property
    def primary_key_id(self) -> str:
        """The id of the key that :meth:`encrypt` uses."""
        return self._primary

    def encrypt(self, plaintext: bytes | str, *, associated_data: bytes = b"") -> str:
        """Encrypt ``plaintext`` (text is UTF-8 encoded) with the primary key; return a token.

        ``associated_data`` is authenticated, not stored: pass the same bytes to decrypt (a user
        id, a column name) so a token cannot be moved to another context.
        """
        data = plaintext.encode() if isinstance(plaintext, str) else plaintext
        nonce = os.urandom(_NONCE_BYTES)
        header = f"{_TOKEN_VERSION}.{self._primary}"
        sealed = self._ciphers[self._primary].encrypt(nonce, data, _aad(header, associated_data))
        return f"{header}.{_b64encode(nonce + sealed)}"

    def decrypt(self, token: str, *, associated_data: bytes = b"") -> bytes:
        """Return the plaintext of ``token``, checking it was not altered.

        Raises:
            InvalidInputError: field ``token`` with rule ``format`` (not a token), ``key_id``
                (made with a key this encryptor does not hold) or ``authentication`` (altered,
                or other ``associated_data``).
        """
        key_id, payload = self._split(token)
        nonce, sealed = payload[:_NONCE_BYTES], payload[_NONCE_BYTES:]
        header = f"{_TOKEN_VERSION}.{key_id}"
        try:
            return self._ciphers[key_id].decrypt(nonce, sealed, _aad(header, associated_data))
        except InvalidTag as exc:
            raise InvalidInputError(
                "token failed authentication: it was altered, or the associated data differs",
                field="token",
                rule="authentication",
            ) from exc

    def key_id(self, token: str) -> str:
        """Return the id of the key ``token`` was encrypted with (it is not decrypted).

        Raises:
            InvalidInputError: as :meth:`decrypt` for rules ``format`` and ``key_id``.
        """
        return self._split(token)[0]

    def needs_reencrypt(self, token: str) -> bool:
        """Tell whether ``token`` was made with another key than the primary one."""
        return self.key_id(token) != self._primary

    def reencrypt(self, token: str, *, associated_data: bytes = b"") -> str:
        """Decrypt ``token`` and encrypt its plaintext again with the primary key.

        Raises:
            InvalidInputError: as :meth:`decrypt`.
        """
        plaintext = self.decrypt(token, associated_data=associated_data)
        return self.encrypt(plaintext, associated_data=associated_data)

    def _split(self, token: str) -> tuple[str, bytes]:
        parts = token.split(".")
        if len(parts) != 3 or parts[0] != _TOKEN_VERSION:  # version.key.payload
            raise _bad_token("token is not an aegis encryption token (v1.<key id>.<data>)")
        _, key_id, encoded = parts
        if not _KEY_ID.fullmatch(key_id):
            raise _bad_token("token key id is not 1-64 characters of A-Z a-z 0-9 _ -")
        if key_id not in self._ciphers:
            raise InvalidInputError(
                "token was encrypted with a key this service does not have "
                "(was a key removed from the key ring too early?)",
                field="token",
                rule="key_id",
                details={"key_id": key_id},
            )
        payload = _b64decode(encoded)
        if payload is None or len(payload) < _NONCE_BYTES + _TAG_BYTES:
            raise _bad_token("token data is not canonical base64url or is too short")
        return key_id, payload


def _decode_key(key_id: str, key: KeyMaterial) -> bytes:
    if not _KEY_ID.fullmatch(key_id):
        raise ConfigurationError(
            f"encryption key id {key_id!r} must be 1-64 characters of A-Z a-z 0-9 _ -"
        )
    if isinstance(key, SecretStr | SecretBytes):
        key = key.get_secret_value()
    if isinstance(key, str):
        try:
            raw = base64.urlsafe_b64decode(key.strip() + "=" * (-len(key.strip()) % 4))
        except (binascii.Error, ValueError) as exc:
            raise ConfigurationError(f"encryption key {key_id!r} is not base64url text") from exc
    else:
        raw = key
    if len(raw) != _KEY_BYTES:
        raise ConfigurationError(
            f"encryption key {key_id!r} must be {_KEY_BYTES} bytes (AES-256), got {len(raw)}; "
            "make one with generate_key()"
        )
    return raw


def _aad(header: str, associated_data: bytes) -> bytes:
    # The header has no NUL byte, so header and caller data cannot be confused for each other.
    return header.encode("ascii") + b"\x00" + associated_data


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes | None:
    """Decode unpadded base64url, or None unless ``text`` is exactly how the bytes encode.

    The canonical check matters: a lenient decoder ignores stray characters and the unused low
    bits of the last character, so an altered token could decode to the original bytes.
    """
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None
    return data if _b64encode(data) == text else None


def _bad_token(message: str) -> InvalidInputError:
    return InvalidInputError(message, field="token", rule="format")


# --- random tokens and comparison ---------------------------------------------------------------


def token_urlsafe(nbytes: int = 32) -> str:
    """Return a random URL-safe text token carrying ``nbytes`` bytes of randomness.

    Raises:
        InvalidInputError: ``nbytes`` is below 16 (128 bits), too few to resist guessing.
    """
    return secrets.token_urlsafe(_checked_nbytes(nbytes))


def token_hex(nbytes: int = 32) -> str:
    """Return a random hexadecimal token of ``nbytes`` bytes (``2 * nbytes`` characters).

    Raises:
        InvalidInputError: ``nbytes`` is below 16 (128 bits).
    """
    return secrets.token_hex(_checked_nbytes(nbytes))


def _checked_nbytes(nbytes: int) -> int:
    if nbytes < _MIN_TOKEN_BYTES:
        raise InvalidInputError(
            f"nbytes must be at least {_MIN_TOKEN_BYTES} (128 bits), got {nbytes}",
            field="nbytes",
            rule="min",
        )
    return nbytes


def constant_time_equals(a: str | bytes, b: str | bytes) -> bool:
    """Compare two secrets in time that does not depend on where they differ.

    Text is compared as UTF-8 bytes, so ``str`` and ``bytes`` may be mixed and non-ASCII text
    works (``hmac.compare_digest`` alone refuses it).

    Example:
        >>> constant_time_equals("abc", b"abc")
        True
    """
    left = a.encode() if isinstance(a, str) else a
    right = b.encode() if isinstance(b, str) else b
    return hmac.compare_digest(left, right)


__all__ = [
    "OWASP_MEMORY_COST",
    "OWASP_PARALLELISM",
    "OWASP_TIME_COST",
    "Encryptor",
    "KeyMaterial",
    "PasswordHasher",
    "constant_time_equals",
    "generate_key",
    "hash_password",
    "needs_rehash",
    "token_hex",
    "token_urlsafe",
    "verify_password",
]

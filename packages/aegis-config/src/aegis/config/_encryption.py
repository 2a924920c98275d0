"""Encrypted setting values (``enc:v1:<token>``) under the master key ring in ``AEGIS_MASTER_KEY``.

``AEGIS_MASTER_KEY`` holds comma-separated ``<key id>:<key>`` entries, newest first:
``2025-06:3q2-7w...,2025-01:qL0x...``. The first key encrypts; every key decrypts, so a
key rotates by putting the new one first and dropping the old one once no value uses it.
Keys are 32 random bytes in base64url (``aegis-config generate-key``). The token is an
:class:`aegis.core.utils.security.Encryptor` token (AES-256-GCM, the key id inside).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from aegis.core.errors import ConfigurationError, InvalidInputError

if TYPE_CHECKING:
    from aegis.core.utils.security import Encryptor

MASTER_KEY_VARIABLE = "AEGIS_MASTER_KEY"
"""The environment variable that holds the master key ring."""

ENCRYPTED_PREFIX = "enc:v1:"
"""How an encrypted setting value starts: ``enc:v1:<token>``."""

# Binds tokens to this use: a token made with the same key for another purpose (an
# encrypted database column) does not decrypt as a setting, and the reverse.
_ASSOCIATED_DATA = b"aegis-config"


def is_encrypted(value: object) -> bool:
    """Tell whether a setting value is written in the encrypted form (any ``enc:`` prefix)."""
    return isinstance(value, str) and value.startswith("enc:")


def master_key_ring(master_key: str | None = None) -> Encryptor:
    """Parse a master key ring (``AEGIS_MASTER_KEY`` when ``master_key`` is None).

    Raises:
        ConfigurationError: the variable is unset or empty, an entry lacks its key id or
            is not a 32-byte base64url key, or the ``crypto`` extra is not installed. The
            message names the key id or entry number, never a key.
    """
    text = os.environ.get(MASTER_KEY_VARIABLE, "") if master_key is None else master_key
    entries = [entry.strip() for entry in text.split(",") if entry.strip()]
    if not entries:
        raise ConfigurationError(
            f"{MASTER_KEY_VARIABLE} is not set; it holds the keys that decrypt enc:v1: values"
            " (make one with: aegis-config generate-key)"
        )
    keys: dict[str, str] = {}
    for number, entry in enumerate(entries, start=1):
        key_id, colon, key = entry.partition(":")
        if not colon or not key_id or not key:
            raise ConfigurationError(
                f"{MASTER_KEY_VARIABLE} entry {number} is not <key id>:<key>;"
                " write e.g. 2025-06:<key from aegis-config generate-key>"
            )
        if key_id in keys:
            raise ConfigurationError(f"{MASTER_KEY_VARIABLE} names key id {key_id!r} twice")
        keys[key_id] = key
    encryptor, _ = _crypto()
    return encryptor(keys, primary=next(iter(keys)))


def encrypt_value(plaintext: str, *, key_ring: Encryptor | None = None) -> str:
    """Encrypt a setting value with the newest master key; return ``enc:v1:<token>``.

    Args:
        plaintext: the value to protect.
        key_ring: the keys to use; defaults to :func:`master_key_ring` (``AEGIS_MASTER_KEY``).

    Raises:
        ConfigurationError: no usable master key.

    Example:
        >>> encrypt_value("s3cret")  # with AEGIS_MASTER_KEY set
        'enc:v1:v1.2025-06.Jm9...'
    """
    ring = key_ring if key_ring is not None else master_key_ring()
    return ENCRYPTED_PREFIX + ring.encrypt(plaintext, associated_data=_ASSOCIATED_DATA)


def decrypt_value(value: str, *, key_ring: Encryptor | None = None) -> str:
    """Return the plaintext of an ``enc:v1:<token>`` value, made with any key in the ring.

    Raises:
        ConfigurationError: no usable master key; or the value is not ``enc:v1:``, was made
            with a key the ring lacks, or was altered. The message never holds the value.
    """
    if not value.startswith(ENCRYPTED_PREFIX):
        raise ConfigurationError(
            f"encrypted value does not start with {ENCRYPTED_PREFIX}, the only format"
            " this version of aegis-config reads"
        )
    ring = key_ring if key_ring is not None else master_key_ring()
    token = value.removeprefix(ENCRYPTED_PREFIX)
    try:
        plaintext = ring.decrypt(token, associated_data=_ASSOCIATED_DATA)
    except InvalidInputError as exc:
        hint = {
            "key_id": f"add its key to {MASTER_KEY_VARIABLE}",
            "authentication": "it was altered, or made for something else than a setting",
        }.get(exc.errors[0].type if exc.errors else "", "re-create it with aegis-config encrypt")
        key_id = exc.details.get("key_id")
        made_with = f" (key id {key_id!r})" if key_id else ""
        raise ConfigurationError(
            f"encrypted value{made_with} cannot be decrypted: {exc.message}; {hint}",
            details={"key_id": key_id} if key_id else None,
        ) from exc
    try:
        return plaintext.decode()
    except UnicodeDecodeError as exc:
        raise ConfigurationError("encrypted value does not hold UTF-8 text") from exc


def generate_master_key(key_id: str) -> str:
    """Return a new ``<key id>:<key>`` entry to put first in ``AEGIS_MASTER_KEY``.

    Raises:
        ConfigurationError: the key id is not 1-64 characters of ``A-Z a-z 0-9 _ -``, or the
            ``crypto`` extra is not installed.
    """
    encryptor, generate_key = _crypto()
    key = generate_key()
    encryptor({key_id: key})  # refuses a malformed key id
    return f"{key_id}:{key}"


def _crypto() -> tuple[type[Encryptor], Callable[[], str]]:
    try:
        # Imported on first use: the crypto extra is optional.
        from aegis.core.utils.security import Encryptor, generate_key
    except ImportError as exc:
        raise ConfigurationError(
            "encrypted settings need the crypto extra: pip install 'aegis-config[crypto]'"
        ) from exc
    return Encryptor, generate_key

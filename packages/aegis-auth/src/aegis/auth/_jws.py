"""PyJWT, with the verification key chosen by ``kid`` and bound to its own algorithm.

PyJWT parses the token, checks the header (``crit``, ``b64``) and validates the claims; aegis
replaces the step that picks a key, so the key comes from the :class:`~aegis.auth.KeySet` by
``kid``, already prepared (no per-call PEM or HMAC key handling), and the algorithm is the key's,
never the token's (RFC 8725 sections 2.1 and 3.1). It also replaces how a segment's base64url is
checked: the same rules as PyJWT (GHSA-hxm8-2xgr-2p9m: alphabet, at most two ``=``, canonical
encoding), tested in C instead of one Python step per character, which was most of PyJWT's own
time for an HS256 token.
"""

from __future__ import annotations

import binascii
from collections.abc import Callable, Collection, Sequence
from typing import Any, cast

from jwt import DecodeError, PyJWS, PyJWT

from aegis.auth._errors import InvalidTokenError
from aegis.auth._keys import KID_PATTERN, JWTKey

KeyLookup = Callable[[str], JWTKey | None]
"""Returns the verification key for a ``kid``, or ``None``."""


class UnknownKeyIdError(Exception):
    """No key is known for the token's ``kid`` (yet): the caller may fetch a JWKS and retry."""

    def __init__(self, kid: str) -> None:
        super().__init__(kid)
        self.kid = kid


_BASE64URL_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_TO_STANDARD_ALPHABET = bytes.maketrans(b"-_", b"+/")
_MAX_PADDING = 2
_PADDING = (b"", b"===", b"==", b"=")  # by the unpadded length modulo 4


def decode_segment(segment: bytes, name: str) -> bytes:
    """Decode one base64url segment of a compact JWS by PyJWT's rules, or raise ``DecodeError``.

    Up to two trailing ``=`` are accepted (some issuers pad), but only on a whole number of
    quads; anything outside the base64url alphabet, an impossible length and a non-canonical
    encoding (stray bits in the last character) are refused.
    """
    stripped = segment.rstrip(b"=")
    padding = len(segment) - len(stripped)
    if (
        padding > _MAX_PADDING
        or (padding and len(segment) % 4)
        or len(stripped) % 4 == 1
        or stripped.translate(None, _BASE64URL_ALPHABET)  # what is left is outside the alphabet
    ):
        raise DecodeError(f"Invalid {name} padding")
    standard = stripped.translate(_TO_STANDARD_ALPHABET) + _PADDING[len(stripped) % 4]
    decoded = binascii.a2b_base64(standard)
    if binascii.b2a_base64(decoded, newline=False) != standard:
        raise DecodeError(f"Invalid {name} padding")
    return decoded


class _KeyedJWS(PyJWS):
    def __init__(self, algorithms: Collection[str]) -> None:
        super().__init__()
        self._allowed = frozenset(algorithms)

    # PyJWS decodes the header, payload and signature segments with this private hook (a PyJWT
    # without it decodes by the same rules itself, only slower; test_tokens compares the two).
    _decode_base64url_segment = staticmethod(decode_segment)

    # PyJWS calls this (a private hook, stable across PyJWT 2.x; the dependency is pinned below
    # 3) with the parsed header once the token is well-formed; ``key`` is our lookup.
    def _verify_signature(  # noqa: PLR0917 - PyJWT's signature
        self,
        signing_input: bytes,
        header: dict[str, Any],
        signature: bytes,
        key: Any = "",
        algorithms: Sequence[str] | None = None,
        options: Any = None,
    ) -> None:
        algorithm = header.get("alg")
        if not isinstance(algorithm, str) or algorithm not in self._allowed:
            raise InvalidTokenError("algorithm")
        kid = header.get("kid")
        if not isinstance(kid, str) or not KID_PATTERN.fullmatch(kid):
            raise InvalidTokenError("unknown_key")
        verification_key = cast("KeyLookup", key)(kid)
        if verification_key is None:
            raise UnknownKeyIdError(kid)
        if verification_key.algorithm != algorithm:
            raise InvalidTokenError("algorithm")
        if not verification_key.verify(signing_input, signature):
            raise InvalidTokenError("signature")


class KeyedJWT(PyJWT):
    """:class:`jwt.PyJWT` whose signature step is :class:`_KeyedJWS`; everything else is PyJWT's.

    Args:
        algorithms: the algorithms accepted at all (each key then accepts only its own).
        required: claims that must be present (PyJWT's ``require`` option).
    """

    def __init__(self, algorithms: Collection[str], required: Sequence[str]) -> None:
        super().__init__(options={"require": list(required), "strict_aud": False})
        self._jws = _KeyedJWS(algorithms)
        self._algorithm_list = sorted(algorithms)

    def decode_with(
        self,
        token: str | bytes,
        lookup: KeyLookup,
        *,
        audience: str | Sequence[str],
        issuer: str | Sequence[str],
        leeway: float,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Verify ``token`` and return its ``(header, claims)``; raises PyJWT's errors."""
        decoded = self.decode_complete(
            token,
            key=cast("Any", lookup),
            algorithms=self._algorithm_list,
            audience=audience,
            issuer=issuer,
            leeway=leeway,
        )
        return decoded["header"], decoded["payload"]

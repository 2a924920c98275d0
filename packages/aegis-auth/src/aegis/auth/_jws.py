"""PyJWT, with the verification key chosen by ``kid`` and bound to its own algorithm.

PyJWT parses the token, checks the header (``crit``, ``b64``) and validates the claims; aegis
replaces the step that picks a key, so the key comes from the :class:`~aegis.auth.KeySet` by
``kid``, already prepared (no per-call PEM or HMAC key handling), and the algorithm is the key's,
never the token's (RFC 8725 sections 2.1 and 3.1). It also replaces how a segment's base64url is
checked: the same rules as PyJWT (GHSA-hxm8-2xgr-2p9m: alphabet, at most two ``=``, canonical
encoding), tested in C instead of one Python step per character, which was most of PyJWT's own
time for an HS256 token.

Both are private hooks of PyJWT (tested with 2.15; the dependency is capped below 3).
:func:`fast_path_available` checks them once per process, when the first :class:`KeyedJWT` is
built; if a PyJWT release changed them it logs one WARNING naming what changed, and tokens are
verified through PyJWT's public API instead, with the same key choice and the same rejections.
"""

from __future__ import annotations

import binascii
import functools
import inspect
import logging
from collections.abc import Callable, Collection, Sequence
from typing import Any, cast

import jwt
from jwt import DecodeError, InvalidSignatureError, PyJWS, PyJWT

from aegis.auth._errors import InvalidTokenError
from aegis.auth._keys import KID_PATTERN, JWTKey

KeyLookup = Callable[[str], JWTKey | None]
"""Returns the verification key for a ``kid``, or ``None``."""

_LOGGER = logging.getLogger("aegis.auth")
_VERIFY_PARAMETERS = [
    "self",
    "signing_input",
    "header",
    "signature",
    "key",
    "algorithms",
    "options",
]
_SEGMENT_PARAMETERS = ["segment", "name"]


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


def choose_key(header: dict[str, Any], allowed: Collection[str], lookup: KeyLookup) -> JWTKey:
    """The key a token's header names, bound to its own algorithm (RFC 8725 section 3.1).

    Raises:
        InvalidTokenError: ``algorithm`` (not allowed, or not the key's), ``unknown_key`` (a
            ``kid`` that cannot name a key).
        UnknownKeyIdError: no key is known for the ``kid`` (yet).
    """
    algorithm = header.get("alg")
    if not isinstance(algorithm, str) or algorithm not in allowed:
        raise InvalidTokenError("algorithm")
    kid = header.get("kid")
    if not isinstance(kid, str) or not KID_PATTERN.fullmatch(kid):
        raise InvalidTokenError("unknown_key")
    key = lookup(kid)
    if key is None:
        raise UnknownKeyIdError(kid)
    if key.algorithm != algorithm:
        raise InvalidTokenError("algorithm")
    return key


class _KeyedJWS(PyJWS):
    def __init__(self, algorithms: Collection[str]) -> None:
        super().__init__()
        self._allowed = frozenset(algorithms)

    # PyJWS decodes the header, payload and signature segments with this private hook (a PyJWT
    # without it decodes by the same rules itself, only slower; test_tokens compares the two).
    # fast_path_available() checks it is still a staticmethod taking (segment, name).
    _decode_base64url_segment = staticmethod(decode_segment)

    # PyJWS calls this private hook with the parsed header once the token is well-formed;
    # ``key`` is our lookup. fast_path_available() checks its parameters are still these.
    def _verify_signature(  # noqa: PLR0917 - PyJWT's signature
        self,
        signing_input: bytes,
        header: dict[str, Any],
        signature: bytes,
        key: Any = "",
        algorithms: Sequence[str] | None = None,
        options: Any = None,
    ) -> None:
        verification_key = choose_key(header, self._allowed, cast("KeyLookup", key))
        if not verification_key.verify(signing_input, signature):
            raise InvalidTokenError("signature")


def _use_keyed_jws(decoder: PyJWT, algorithms: Collection[str]) -> None:
    """Make ``decoder`` verify through :class:`_KeyedJWS`: PyJWT's private ``_jws``."""
    decoder._jws = _KeyedJWS(algorithms)


def _verification_material(key: JWTKey) -> Any:
    """The prepared public key (or HMAC secret) of ``key``, for PyJWT's public ``decode``."""
    return key._verification_key  # the same member's key class: derived once, not per token


def _parameters(function: Callable[..., Any]) -> list[str]:
    return list(inspect.signature(function).parameters)


def _hooks_are_called() -> bool:
    """Verify one token through the hooks: PyJWT may keep a hook yet stop calling it."""
    key = JWTKey.hmac("probe", bytes(32))
    token = jwt.encode({}, key.signing_material(), "HS256", headers={"kid": "probe"})
    asked: list[str] = []

    def lookup(kid: str) -> JWTKey:
        asked.append(kid)
        return key

    decoder = PyJWT()
    _use_keyed_jws(decoder, ["HS256"])
    decoder.decode_complete(token, key=cast("Any", lookup), algorithms=["HS256"])
    return asked == ["probe"]


def missing_internals() -> list[str]:
    """Name what the fast path needs of PyJWT and does not find; empty when all is there."""
    missing: list[str] = []
    verify = inspect.getattr_static(PyJWS, "_verify_signature", None)
    if not inspect.isfunction(verify) or _parameters(verify) != _VERIFY_PARAMETERS:
        missing.append("PyJWS._verify_signature(" + ", ".join(_VERIFY_PARAMETERS[1:]) + ")")
    segment = inspect.getattr_static(PyJWS, "_decode_base64url_segment", None)
    if (
        not isinstance(segment, staticmethod)
        or _parameters(segment.__func__) != _SEGMENT_PARAMETERS
    ):
        missing.append("PyJWS._decode_base64url_segment(segment, name), a staticmethod")
    if not isinstance(vars(PyJWT()).get("_jws"), PyJWS):
        missing.append("PyJWT()._jws, its PyJWS")
    if not missing:
        try:
            called = _hooks_are_called()
        except Exception as exc:  # any failure here means "use the public path"
            missing.append(f"a token verified through PyJWS._verify_signature ({exc!r})")
        else:
            if not called:
                missing.append("PyJWS.decode_complete calling PyJWS._verify_signature")
    return missing


@functools.cache
def fast_path_available() -> bool:
    """Whether PyJWT has the hooks the fast path uses; logs one WARNING (per process) if not."""
    missing = missing_internals()
    if missing:
        _LOGGER.warning(
            "PyJWT %s lacks what aegis.auth's fast token verification uses (%s); verifying "
            "through PyJWT's public API instead (slower, same results)",
            jwt.__version__,
            "; ".join(missing),
        )
    return not missing


class KeyedJWT(PyJWT):
    """:class:`jwt.PyJWT` verifying with the key the token's ``kid`` names, in that key's algorithm.

    With the hooks (:func:`fast_path_available`) the signature step is :class:`_KeyedJWS`;
    without them, :meth:`decode_with` reads the header with :func:`jwt.get_unverified_header`,
    chooses the key the same way and lets PyJWT's public ``decode_complete`` verify with that
    key alone. Either way the claims are PyJWT's.

    Args:
        algorithms: the algorithms accepted at all (each key then accepts only its own).
        required: claims that must be present (PyJWT's ``require`` option).
    """

    def __init__(self, algorithms: Collection[str], required: Sequence[str]) -> None:
        super().__init__(options={"require": list(required), "strict_aud": False})
        self._allowed = frozenset(algorithms)
        self._algorithm_list = sorted(algorithms)
        self.fast = fast_path_available()
        if self.fast:
            _use_keyed_jws(self, algorithms)

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
        if not self.fast:
            return self._decode_public(
                token, lookup, audience=audience, issuer=issuer, leeway=leeway
            )
        decoded = self.decode_complete(
            token,
            key=cast("Any", lookup),
            algorithms=self._algorithm_list,
            audience=audience,
            issuer=issuer,
            leeway=leeway,
        )
        return decoded["header"], decoded["payload"]

    def _decode_public(
        self,
        token: str | bytes,
        lookup: KeyLookup,
        *,
        audience: str | Sequence[str],
        issuer: str | Sequence[str],
        leeway: float,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        header = jwt.get_unverified_header(token)  # the same parsing and header checks
        if header.get("b64", True) is False:
            # PyJWT refuses it before the signature step (no detached payload is ever given):
            # refused here before the key is chosen, the reason is the same ("malformed").
            raise DecodeError('an unencoded payload ("b64": false) is not accepted')
        key = choose_key(header, self._allowed, lookup)
        try:
            decoded = self.decode_complete(
                token,
                key=_verification_material(key),
                algorithms=[key.algorithm],
                audience=audience,
                issuer=issuer,
                leeway=leeway,
            )
        except InvalidSignatureError:
            raise InvalidTokenError("signature") from None
        return decoded["header"], decoded["payload"]

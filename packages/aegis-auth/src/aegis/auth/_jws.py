"""PyJWT, with the verification key chosen by ``kid`` and bound to its own algorithm.

PyJWT parses the token, checks the header (``crit``, ``b64``) and validates the claims; aegis only
replaces the step that picks a key, so the key comes from the :class:`~aegis.auth.KeySet` by
``kid``, already prepared (no per-call PEM or HMAC key handling), and the algorithm is the key's,
never the token's (RFC 8725 sections 2.1 and 3.1).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Any, cast

from jwt import PyJWS, PyJWT

from aegis.auth._errors import InvalidTokenError
from aegis.auth._keys import KID_PATTERN, JWTKey

KeyLookup = Callable[[str], JWTKey | None]
"""Returns the verification key for a ``kid``, or ``None``."""


class UnknownKeyIdError(Exception):
    """No key is known for the token's ``kid`` (yet): the caller may fetch a JWKS and retry."""

    def __init__(self, kid: str) -> None:
        super().__init__(kid)
        self.kid = kid


class _KeyedJWS(PyJWS):
    def __init__(self, algorithms: Collection[str]) -> None:
        super().__init__()
        self._allowed = frozenset(algorithms)

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
        token: str,
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

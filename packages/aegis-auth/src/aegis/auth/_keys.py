"""Signing and verification keys: parsed once, bound to one algorithm, selected by ``kid``.

A :class:`JWTKey` holds a key object already prepared by PyJWT's algorithm (PEM parsed, curve and
size checked), so no verification pays for key handling. A :class:`KeySet` maps ``kid`` to keys;
rotation is: add the new key as the signing key, keep the old one until every token it signed has
expired, then retire it.
"""

from __future__ import annotations

import itertools
import re
import secrets
from collections.abc import Iterable, Mapping
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import Algorithm, get_default_algorithms
from jwt.exceptions import InvalidKeyError, PyJWKError
from pydantic import SecretBytes, SecretStr

from aegis.core.errors import ConfigurationError

HMAC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
"""Symmetric algorithms: the same secret signs and verifies; never published in a JWKS."""

ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
"""Public-key algorithms: a private key signs, the public key (publishable) verifies."""

SUPPORTED_ALGORITHMS = HMAC_ALGORITHMS | ASYMMETRIC_ALGORITHMS
"""Every algorithm a :class:`JWTKey` may be bound to; ``none`` is never one of them."""

KID_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,128}")
"""What a ``kid`` may look like. Paths, URLs and SQL fall outside it and are refused unread."""

_ALGORITHMS: dict[str, Algorithm] = {
    name: algorithm
    for name, algorithm in get_default_algorithms().items()
    if name in SUPPORTED_ALGORITHMS
}
_CURVES: dict[str, ec.EllipticCurve] = {
    "ES256": ec.SECP256R1(),
    "ES384": ec.SECP384R1(),
    "ES512": ec.SECP521R1(),
}
_STAMPS = itertools.count()
_RSA_BITS = 3072  # NIST SP 800-57: 3072-bit RSA for keys used beyond 2030
_HMAC_SECRET_BYTES = 64


class JWTKey:
    """One key bound to one algorithm, identified by ``kid``; parsed and checked on creation.

    The algorithm allow-list is the key itself: a token is verified only with the algorithm its
    key was created for, whatever the token's header says (RFC 8725 section 3.1). Make keys with
    the class methods :meth:`hmac`, :meth:`from_pem`, :meth:`from_jwk` and :meth:`generate`.

    Raises:
        ConfigurationError: an unsupported algorithm, a ``kid`` outside :data:`KID_PATTERN`, a
            key of the wrong type or curve for the algorithm, an HMAC secret shorter than the
            hash (RFC 7518 section 3.2) or an RSA key under 2048 bits. Messages name the
            ``kid``, never the key.

    Example:
        >>> key = JWTKey.generate("2026-01", "ES256")
        >>> key.public_jwk()["kty"]
        'EC'
    """

    __slots__ = ("_algorithm", "_key", "_verification_key", "algorithm", "kid")

    def __init__(self, kid: str, algorithm: str, key: Any) -> None:
        if not isinstance(kid, str) or not KID_PATTERN.fullmatch(kid):
            raise ConfigurationError(
                f"key id {str(kid)[:40]!r} must be 1-128 characters of A-Z a-z 0-9 _ . -"
            )
        if algorithm not in _ALGORITHMS:
            raise ConfigurationError(
                f"key {kid!r}: algorithm {algorithm!r} is not one of {sorted(_ALGORITHMS)}"
            )
        self.kid = kid
        """The key id tokens name in their ``kid`` header."""
        self.algorithm = algorithm
        """The one algorithm this key signs and verifies with."""
        self._algorithm = _ALGORITHMS[algorithm]
        try:
            self._key = self._algorithm.prepare_key(key)
        except (InvalidKeyError, TypeError, ValueError) as exc:
            raise ConfigurationError(
                f"key {kid!r} is not a valid {algorithm} key: {type(exc).__name__}"
            ) from exc
        weakness = self._algorithm.check_key_length(self._key)
        if weakness is not None:
            raise ConfigurationError(f"key {kid!r}: {weakness}")
        # PyJWT's RSA verification needs the public half; derive it once, not per token.
        self._verification_key = (
            self._key.public_key() if hasattr(self._key, "public_key") else self._key
        )

    @classmethod
    def hmac(
        cls, kid: str, secret: str | bytes | SecretStr | SecretBytes, algorithm: str = "HS256"
    ) -> JWTKey:
        """Return an HMAC key from a shared secret (at least as long as the hash: 32 bytes)."""
        if algorithm not in HMAC_ALGORITHMS:
            raise ConfigurationError(f"key {kid!r}: {algorithm!r} is not an HMAC algorithm")
        if isinstance(secret, SecretStr | SecretBytes):
            secret = secret.get_secret_value()
        return cls(kid, algorithm, secret.encode() if isinstance(secret, str) else secret)

    @classmethod
    def from_pem(cls, kid: str, pem: str | bytes | SecretStr, algorithm: str) -> JWTKey:
        """Return a key from a PEM private key (signs and verifies) or public key (verifies)."""
        if algorithm not in ASYMMETRIC_ALGORITHMS:
            raise ConfigurationError(f"key {kid!r}: {algorithm!r} is not a public-key algorithm")
        if isinstance(pem, SecretStr):
            pem = pem.get_secret_value()
        return cls(kid, algorithm, pem.encode() if isinstance(pem, str) else pem)

    @classmethod
    def from_jwk(cls, jwk: Mapping[str, Any]) -> JWTKey:
        """Return a public verification key from a JWK (as a JWKS lists them).

        The JWK must carry a ``kid``; its ``alg`` is used when present, else the one its
        ``kty``/``crv`` implies. Symmetric (``oct``) keys and private members are refused:
        a JWKS publishes public keys only.
        """
        kid = jwk.get("kid")
        kty = jwk.get("kty")
        if not isinstance(kid, str):
            raise ConfigurationError("a JWK without a string 'kid' cannot be selected by tokens")
        if kty not in {"RSA", "EC", "OKP"} or "d" in jwk:
            raise ConfigurationError(f"JWK {kid[:40]!r}: only public RSA, EC or OKP keys verify")
        algorithm = jwk.get("alg") or _implied_algorithm(jwk)
        if algorithm not in ASYMMETRIC_ALGORITHMS:
            raise ConfigurationError(f"JWK {kid[:40]!r}: algorithm {algorithm!r} is not accepted")
        try:
            key = _ALGORITHMS[algorithm].from_jwk(dict(jwk))
        except (InvalidKeyError, PyJWKError, KeyError, TypeError, ValueError) as exc:
            raise ConfigurationError(f"JWK {kid[:40]!r} is not a valid {algorithm} key") from exc
        return cls(kid, algorithm, key)

    @classmethod
    def generate(cls, kid: str, algorithm: str = "EdDSA") -> JWTKey:
        """Return a new random key: a 64-byte secret for HMAC, a fresh key pair otherwise."""
        if algorithm in HMAC_ALGORITHMS:
            return cls.hmac(kid, secrets.token_bytes(_HMAC_SECRET_BYTES), algorithm)
        private: Any
        if algorithm == "EdDSA":
            private = ed25519.Ed25519PrivateKey.generate()
        elif algorithm in _CURVES:
            private = ec.generate_private_key(_CURVES[algorithm])
        elif algorithm in ASYMMETRIC_ALGORITHMS:
            private = rsa.generate_private_key(public_exponent=65537, key_size=_RSA_BITS)
        else:
            raise ConfigurationError(f"key {kid!r}: cannot generate a key for {algorithm!r}")
        return cls(kid, algorithm, private)

    @property
    def is_symmetric(self) -> bool:
        """Whether this is an HMAC secret (never published)."""
        return self.algorithm in HMAC_ALGORITHMS

    @property
    def can_sign(self) -> bool:
        """Whether this key can sign: an HMAC secret or a private key."""
        return self.is_symmetric or hasattr(self._key, "sign")

    def public_jwk(self) -> dict[str, Any]:
        """Return the public JWK (``kid``, ``alg``, ``use: sig``) for a JWKS document.

        Raises:
            ConfigurationError: the key is an HMAC secret, which must never be published.
        """
        if self.is_symmetric:
            raise ConfigurationError(f"key {self.kid!r} is an HMAC secret and is never published")
        jwk: dict[str, Any] = dict(self._algorithm.to_jwk(self._verification_key, as_dict=True))
        jwk.update(kid=self.kid, alg=self.algorithm, use="sig")
        return jwk

    def public_key(self) -> JWTKey:
        """Return the verification-only twin of this key (itself for HMAC and public keys)."""
        if self.is_symmetric or not self.can_sign:
            return self
        return JWTKey(self.kid, self.algorithm, self._verification_key)

    def signing_material(self) -> Any:
        """Return the prepared private key or secret, for PyJWT's ``encode``.

        Raises:
            ConfigurationError: this is a public key.
        """
        if not self.can_sign:
            raise ConfigurationError(f"key {self.kid!r} is a public key and cannot sign")
        return self._key

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Tell whether ``signature`` is this key's signature of ``message``."""
        return bool(self._algorithm.verify(message, self._verification_key, signature))

    def __repr__(self) -> str:
        kind = "secret" if self.is_symmetric else ("private" if self.can_sign else "public")
        return f"JWTKey(kid={self.kid!r}, algorithm={self.algorithm!r}, {kind})"


def _implied_algorithm(jwk: Mapping[str, Any]) -> str | None:
    kty, crv = jwk.get("kty"), jwk.get("crv")
    if kty == "OKP":
        return "EdDSA" if crv == "Ed25519" else None
    if kty == "EC":
        return {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}.get(str(crv))
    return "RS256"


class KeySet:
    """The keys a :class:`~aegis.auth.TokenService` verifies with, and the one it signs with.

    Args:
        keys: the keys, in any order; their ``kid`` values must be unique.
        signing_kid: the key that signs; defaults to the last key in ``keys`` that can sign.

    Raises:
        ConfigurationError: duplicate ``kid`` or an unknown/public ``signing_kid``.

    Example:
        >>> keys = KeySet([JWTKey.generate("2025-06"), JWTKey.generate("2026-01")])
        >>> keys.signing_key.kid
        '2026-01'
    """

    def __init__(self, keys: Iterable[JWTKey] = (), *, signing_kid: str | None = None) -> None:
        self._keys: dict[str, JWTKey] = {}
        self._signing_kid: str | None = None
        self.stamp = next(_STAMPS)
        """Unique to this set and renewed by every :meth:`retire`: while it is unchanged, no key
        verified with before has left the set (keys are never replaced in place)."""
        for key in keys:
            self.add(key)
        if signing_kid is not None:
            self.use_for_signing(signing_kid)
        else:
            signers = [key.kid for key in self._keys.values() if key.can_sign]
            self._signing_kid = signers[-1] if signers else None

    def add(self, key: JWTKey, *, sign: bool = False) -> None:
        """Add ``key`` for verification; with ``sign=True`` it also becomes the signing key."""
        if key.kid in self._keys:
            raise ConfigurationError(f"key id {key.kid!r} is already in the key set")
        self._keys[key.kid] = key
        if sign:
            self.use_for_signing(key.kid)

    def use_for_signing(self, kid: str) -> None:
        """Make the key ``kid`` (already in the set, able to sign) the signing key."""
        key = self._keys.get(kid)
        if key is None or not key.can_sign:
            raise ConfigurationError(f"signing key {kid!r} is not a private or HMAC key in the set")
        self._signing_kid = kid

    def retire(self, kid: str) -> None:
        """Remove ``kid``: tokens it signed stop verifying at once (also cached ones)."""
        if kid == self._signing_kid:
            raise ConfigurationError(f"key {kid!r} signs new tokens; sign with another first")
        self._keys.pop(kid, None)
        self.stamp = next(_STAMPS)

    def get(self, kid: str) -> JWTKey | None:
        """Return the key ``kid``, or ``None``."""
        return self._keys.get(kid)

    @property
    def kids(self) -> list[str]:
        """Every key id in the set, in the order they were added."""
        return list(self._keys)

    @property
    def signing_key(self) -> JWTKey:
        """The key new tokens are signed with.

        Raises:
            ConfigurationError: the set holds only public keys (a verify-only service).
        """
        if self._signing_kid is None:
            raise ConfigurationError("this key set has no private or HMAC key to sign with")
        return self._keys[self._signing_kid]

    def jwks(self) -> dict[str, list[dict[str, Any]]]:
        """Return the JWKS document (RFC 7517) of the public keys; HMAC secrets are left out."""
        return {"keys": [key.public_jwk() for key in self._keys.values() if not key.is_symmetric]}

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, kid: object) -> bool:
        return kid in self._keys

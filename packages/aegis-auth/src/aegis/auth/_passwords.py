"""Passwords for async services: argon2id off the event loop, with bounded concurrency.

The hashing itself is :class:`aegis.core.utils.security.PasswordHasher` (OWASP argon2id
parameters); this module adds what a login endpoint needs around it: a length cap before
hashing, a worker-thread limit, refusal of absurd stored hashes, equal work for unknown users,
and a new hash when the stored one uses outdated parameters.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import anyio
import anyio.to_thread
from argon2 import extract_parameters
from argon2.exceptions import InvalidHashError
from pydantic import SecretStr

from aegis.auth._metrics import AuthMetrics
from aegis.core.errors import InvalidInputError
from aegis.core.utils.security import PasswordHasher, bcrypt_cost

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

_LOGGER = logging.getLogger("aegis.auth")
_T = TypeVar("_T")
_MIN_BCRYPT_COST = 4  # the lowest cost bcrypt itself accepts
_MAX_STORED_HASH = 512  # a PHC string with generous salt and hash is ~100 characters


@dataclass(frozen=True)
class PasswordCheck:
    """The outcome of :meth:`PasswordService.verify`.

    Attributes:
        valid: whether the password matched.
        new_hash: a fresh hash to store in place of the old one (its parameters or algorithm
            were outdated); only ever set when ``valid``.
    """

    valid: bool
    new_hash: str | None = None


class PasswordService:
    """Hash and verify passwords from async code without stalling the event loop.

    Args:
        hasher: the argon2id hasher; defaults to the OWASP parameters (m=19 MiB, t=2, p=1).
        max_length: longest password accepted, in UTF-8 bytes (the cap keeps an attacker from
            making each hash cost more).
        max_concurrency: hashes computed at once; others wait (each takes ~19 MiB and a core).
        max_memory_cost: stored argon2 hashes asking for more KiB than this are refused.
        max_time_cost: stored argon2 hashes asking for more passes are refused.
        max_parallelism: stored argon2 hashes asking for more lanes are refused.
        max_bcrypt_cost: stored bcrypt hashes with a higher cost are refused.
        metrics_registry: Prometheus registry for ``aegis_auth_password_checks_total`` and
            ``aegis_auth_password_rehashes_total`` (the default registry when ``None``).

    Example:
        >>> passwords = PasswordService()
        >>> stored = await passwords.hash("correct horse battery staple")
        >>> (await passwords.verify("correct horse battery staple", stored)).valid
        True
    """

    def __init__(
        self,
        hasher: PasswordHasher | None = None,
        *,
        max_length: int = 1024,
        max_concurrency: int = 2,
        max_memory_cost: int = 256 * 1024,
        max_time_cost: int = 16,
        max_parallelism: int = 16,
        max_bcrypt_cost: int = 15,
        metrics_registry: CollectorRegistry | None = None,
    ) -> None:
        self.hasher = hasher or PasswordHasher()
        self.max_length = max_length
        self._limiter = anyio.CapacityLimiter(max_concurrency)
        self._limits = (max_memory_cost, max_time_cost, max_parallelism, max_bcrypt_cost)
        self._dummy_hash: str | None = None
        metrics = AuthMetrics.for_registry(metrics_registry)
        self._checks = metrics.password_checks
        self._rehashes = metrics.password_rehashes

    async def hash(self, password: str | SecretStr) -> str:
        r"""Return the argon2id hash of ``password``, computed in a worker thread.

        Raises:
            InvalidInputError: the password is empty, longer than ``max_length`` bytes, or not
                valid Unicode text (a lone surrogate such as ``"\ud800"`` has no UTF-8 form):
                field ``password``, rule ``required`` / ``max_length`` / ``unicode``.
        """
        plain = _plain(password)
        if not plain:
            raise InvalidInputError("a password is required", field="password", rule="required")
        size = _utf8_size(plain)
        if size is None:
            raise InvalidInputError(
                "must be valid Unicode text: lone surrogates (U+D800-U+DFFF) cannot be hashed",
                field="password",
                rule="unicode",
            )
        if size > self.max_length:
            raise InvalidInputError(
                f"must be at most {self.max_length} bytes", field="password", rule="max_length"
            )
        return await self._run(self.hasher.hash, plain)

    async def verify(self, password: str | SecretStr, stored_hash: str | None) -> PasswordCheck:
        """Check ``password`` against ``stored_hash``; never raises for a bad password or hash.

        Pass ``stored_hash=None`` for an unknown user: the same argon2 work is done against a
        dummy hash, so response time does not reveal whether the account exists. A malformed
        or absurd stored hash (costs beyond the limits) is refused as a failed check and
        logged, not turned into an error answer. A password that is not valid Unicode text
        (a lone surrogate) cannot match anything: it fails like a wrong one, with the same work.
        After a match with outdated parameters, ``new_hash`` holds the replacement to store.
        """
        plain = _plain(password)
        size = _utf8_size(plain)
        if size is None:
            # Never hashed, so never a match; the dummy check below still costs the same time.
            plain = plain.encode("utf-8", "replace").decode()
        if stored_hash is None:
            refused: str | None = "unknown_user"
        elif size is None or not plain or size > self.max_length:
            refused = "invalid"
        elif not self._is_sane(stored_hash):
            refused = "bad_hash"
        else:
            refused = None
        if refused is not None or stored_hash is None:
            await self._run(self._verify, plain[: self.max_length], await self._dummy())
            self._checks.labels(refused or "unknown_user").inc()
            return PasswordCheck(valid=False)
        if not await self._run(self._verify, plain, stored_hash):
            self._checks.labels("invalid").inc()
            return PasswordCheck(valid=False)
        self._checks.labels("valid").inc()
        if self.hasher.needs_rehash(stored_hash):
            self._rehashes.inc()
            return PasswordCheck(valid=True, new_hash=await self._run(self.hasher.hash, plain))
        return PasswordCheck(valid=True)

    def _verify(self, password: str, stored_hash: str) -> bool:
        try:
            return self.hasher.verify(password, stored_hash)
        except InvalidInputError:
            _LOGGER.error("a stored password hash is malformed; the login was refused")
            return False

    def _is_sane(self, stored_hash: str) -> bool:
        max_memory, max_time, max_lanes, max_bcrypt = self._limits
        cost = bcrypt_cost(stored_hash)
        if len(stored_hash) > _MAX_STORED_HASH or not stored_hash.isascii():
            sane = False
        elif cost is not None:
            sane = _MIN_BCRYPT_COST <= cost <= max_bcrypt
        else:  # argon2, or malformed: extract_parameters refuses anything else
            try:
                parameters = extract_parameters(stored_hash)
            except (InvalidHashError, ValueError):
                sane = False
            else:
                sane = (
                    parameters.memory_cost <= max_memory
                    and parameters.time_cost <= max_time
                    and parameters.parallelism <= max_lanes
                )
        if not sane:
            _LOGGER.error("a stored password hash is malformed or too costly; login refused")
        return sane

    async def _dummy(self) -> str:
        if self._dummy_hash is None:
            self._dummy_hash = await self._run(self.hasher.hash, "aegis-dummy-password")
        return self._dummy_hash

    async def _run(self, function: Callable[..., _T], *args: str) -> _T:
        return await anyio.to_thread.run_sync(function, *args, limiter=self._limiter)


def _plain(password: str | SecretStr) -> str:
    return password.get_secret_value() if isinstance(password, SecretStr) else password


def _utf8_size(plain: str) -> int | None:
    """The UTF-8 length of ``plain``, or ``None`` when it has none (a lone surrogate)."""
    try:
        return len(plain.encode())
    except UnicodeEncodeError:
        return None

"""Where revocations and used refresh tokens are remembered: the protocol and an in-memory store.

Entries only need to outlive the tokens they concern, so every write carries the token's expiry
and a store may forget the entry after it. :class:`~aegis.auth.RedisTokenStore` is the
production store (shared by every process), :class:`~aegis.auth.ReplicatedTokenStore` keeps a
copy of its revocations in each process; :class:`MemoryTokenStore` serves one process (tests,
development, single-instance tools).
"""

from __future__ import annotations

import time
from typing import Protocol, runtime_checkable

_SWEEP_EVERY = 1024  # writes between sweeps of expired entries, so memory stays bounded


@runtime_checkable
class TokenStore(Protocol):
    """Storage for revoked tokens, revoked token families and consumed refresh tokens.

    ``expires_at`` is a Unix time in seconds after which the entry may be forgotten.
    """

    async def revoke(self, jti: str, *, expires_at: int) -> None:
        """Remember that the token ``jti`` is revoked."""

    async def revoke_family(self, family: str, *, expires_at: int) -> None:
        """Remember that every token of the refresh-token ``family`` is revoked."""

    async def is_revoked(self, jti: str, family: str | None) -> bool:
        """Whether the token ``jti`` or its ``family`` is revoked (one round trip)."""

    async def consume(self, jti: str, *, expires_at: int) -> bool:
        """Mark the refresh token ``jti`` used; ``True`` the first time only (atomically)."""


@runtime_checkable
class NowaitRevocationCheck(Protocol):
    """A store that can tell from memory whether a token is revoked, without I/O.

    :meth:`~aegis.auth.TokenService.verify_nowait` asks it for tokens it verified before, so
    the common request costs no coroutine even with revocation on. :class:`MemoryTokenStore`
    and :class:`~aegis.auth.ReplicatedTokenStore` offer it; ``RedisTokenStore`` does not.
    """

    def revoked_nowait(self, jti: str, family: str | None) -> bool | None:
        """Whether ``jti`` or ``family`` is revoked; ``None`` when that needs I/O to tell."""


class MemoryTokenStore:
    """A :class:`TokenStore` in this process's memory: for tests and single-process services.

    Expired entries are swept as new ones are written. Revocations are lost on restart and not
    shared between processes: use :class:`~aegis.auth.RedisTokenStore` in production.
    """

    def __init__(self) -> None:
        self._revoked: dict[str, int] = {}
        self._families: dict[str, int] = {}
        self._used: dict[str, int] = {}
        self._writes = 0

    async def revoke(self, jti: str, *, expires_at: int) -> None:
        """Remember that the token ``jti`` is revoked until ``expires_at``."""
        self._write(self._revoked, jti, expires_at)

    async def revoke_family(self, family: str, *, expires_at: int) -> None:
        """Remember that the ``family`` is revoked until ``expires_at``."""
        self._write(self._families, family, expires_at)

    async def is_revoked(self, jti: str, family: str | None) -> bool:
        """Whether ``jti`` or ``family`` is revoked and the entry has not expired."""
        return self.revoked_nowait(jti, family)

    def revoked_nowait(self, jti: str, family: str | None) -> bool:
        """The same answer as :meth:`is_revoked`, without a coroutine: memory always knows."""
        revoked = self._revoked.get(jti)
        if revoked is not None and revoked > time.time():
            return True
        if family is None:
            return False
        until = self._families.get(family)
        return until is not None and until > time.time()

    async def consume(self, jti: str, *, expires_at: int) -> bool:
        """Mark ``jti`` used; ``True`` the first time."""
        if self._used.get(jti, 0) > time.time():
            return False
        self._write(self._used, jti, expires_at)
        return True

    def _write(self, table: dict[str, int], key: str, expires_at: int) -> None:
        table[key] = max(expires_at, table.get(key, 0))
        self._writes += 1
        if self._writes % _SWEEP_EVERY == 0:
            now = time.time()
            for entries in (self._revoked, self._families, self._used):
                for stale in [name for name, until in entries.items() if until <= now]:
                    del entries[stale]

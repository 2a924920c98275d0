"""The production :class:`~aegis.auth.TokenStore`: Redis, shared by every process of a service.

Needs the ``redis`` extra. Each entry is one key with a TTL ending when the token it concerns
expires, so the store never grows past the live tokens: ``<prefix>revoked:<jti>``,
``<prefix>family:<family>`` and ``<prefix>used:<jti>``.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from redis.asyncio import Redis


class RedisTokenStore:
    """Revocations and used refresh tokens in Redis (or Valkey).

    A revocation check is one ``MGET`` round trip; consuming a refresh token is one
    ``SET NX``, atomic across processes, so two concurrent refreshes with the same token cannot
    both win.

    Args:
        client: a ``redis.asyncio.Redis`` client; the caller owns (and closes) it.
        prefix: prefix of every key, to share a Redis between services or tests.

    Example:
        >>> from redis.asyncio import Redis
        >>> store = RedisTokenStore(Redis.from_url("redis://localhost:6379/0"), prefix="users:")
    """

    def __init__(self, client: Redis, *, prefix: str = "aegis:auth:") -> None:
        self._client = client
        self._prefix = prefix

    async def revoke(self, jti: str, *, expires_at: int) -> None:
        """Remember that the token ``jti`` is revoked until ``expires_at``."""
        await self._remember(f"{self._prefix}revoked:{jti}", expires_at, only_new=False)

    async def revoke_family(self, family: str, *, expires_at: int) -> None:
        """Remember that every token of ``family`` is revoked until ``expires_at``."""
        await self._remember(f"{self._prefix}family:{family}", expires_at, only_new=False)

    async def is_revoked(self, jti: str, family: str | None) -> bool:
        """Whether ``jti`` or ``family`` is revoked: one ``MGET``."""
        keys = [f"{self._prefix}revoked:{jti}"]
        if family is not None:
            keys.append(f"{self._prefix}family:{family}")
        values = await self._client.mget(keys)
        return any(value is not None for value in values)

    async def consume(self, jti: str, *, expires_at: int) -> bool:
        """Mark the refresh token ``jti`` used: ``True`` for the first caller only."""
        return await self._remember(f"{self._prefix}used:{jti}", expires_at, only_new=True)

    async def _remember(self, key: str, expires_at: int, *, only_new: bool) -> bool:
        # A TTL of at least one second: an entry for a token that expires this very second
        # must still exist for that second.
        ttl = max(1, math.ceil(expires_at - time.time()))
        return bool(await self._client.set(key, b"1", ex=ttl, nx=only_new))

"""The production :class:`~aegis.auth.TokenStore`: Redis, shared by every process of a service.

Needs the ``redis`` extra. Each entry is one key with a TTL ending when the token it concerns
expires, so the store never grows past the live tokens: ``<prefix>revoked:<jti>``,
``<prefix>family:<family>`` and ``<prefix>used:<jti>``. A revocation key holds its expiry (Unix
seconds) and is announced on the channel ``<prefix>revocations`` in the same transaction, so a
:class:`~aegis.auth.ReplicatedTokenStore` in any process learns it at once.
"""

from __future__ import annotations

import json
import math
import time
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from redis.asyncio import Redis

RevocationKind = Literal["jti", "family"]
"""What a revocation names: one token (``jti``) or a refresh-token family."""

KEY_KINDS: dict[RevocationKind, str] = {"jti": "revoked", "family": "family"}
"""The key infix of each kind of revocation: ``<prefix>revoked:<jti>``, ``<prefix>family:<id>``."""


def revocation_message(kind: RevocationKind, ident: str, expires_at: int) -> bytes:
    """The message published for one revocation: ``{"kind", "id", "expires_at"}`` as JSON."""
    return json.dumps(
        {"kind": kind, "id": ident, "expires_at": expires_at}, separators=(",", ":")
    ).encode()


class RedisTokenStore:
    """Revocations and used refresh tokens in Redis (or Valkey).

    A revocation check is one ``MGET`` round trip; consuming a refresh token is one
    ``SET NX``, atomic across processes, so two concurrent refreshes with the same token cannot
    both win. A revocation is a ``SET`` and a ``PUBLISH`` on :attr:`channel` in one
    ``MULTI``/``EXEC``: a subscriber either sees the message or finds the key when it scans.

    Args:
        client: a ``redis.asyncio.Redis`` client; the caller owns (and closes) it.
        prefix: prefix of every key, to share a Redis between services or tests.

    Example:
        >>> from redis.asyncio import Redis
        >>> store = RedisTokenStore(Redis.from_url("redis://localhost:6379/0"), prefix="users:")

    .. versionchanged:: unreleased
        Revocation keys hold their expiry instead of ``1``, and each revocation is published
        on ``<prefix>revocations``.
    """

    def __init__(self, client: Redis, *, prefix: str = "aegis:auth:") -> None:
        self.client = client
        """The Redis client (owned by the caller)."""
        self.prefix = prefix
        """The prefix of every key and of the channel."""
        self.channel = f"{prefix}revocations"
        """Where each revocation is published (JSON: ``kind``, ``id``, ``expires_at``)."""

    async def revoke(self, jti: str, *, expires_at: int) -> None:
        """Remember that the token ``jti`` is revoked until ``expires_at``, and publish it."""
        await self._revoke("jti", jti, expires_at)

    async def revoke_family(self, family: str, *, expires_at: int) -> None:
        """Remember that every token of ``family`` is revoked until ``expires_at``; publish it."""
        await self._revoke("family", family, expires_at)

    async def is_revoked(self, jti: str, family: str | None) -> bool:
        """Whether ``jti`` or ``family`` is revoked: one ``MGET``."""
        keys = [self.key("jti", jti)]
        if family is not None:
            keys.append(self.key("family", family))
        values = await self.client.mget(keys)
        return any(value is not None for value in values)

    async def consume(self, jti: str, *, expires_at: int) -> bool:
        """Mark the refresh token ``jti`` used: ``True`` for the first caller only."""
        return bool(
            await self.client.set(f"{self.prefix}used:{jti}", b"1", ex=_ttl(expires_at), nx=True)
        )

    def key(self, kind: RevocationKind, ident: str) -> str:
        """The key of one revocation: ``<prefix>revoked:<jti>`` or ``<prefix>family:<id>``."""
        return f"{self.prefix}{KEY_KINDS[kind]}:{ident}"

    async def _revoke(self, kind: RevocationKind, ident: str, expires_at: int) -> None:
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.set(self.key(kind, ident), str(expires_at), ex=_ttl(expires_at))
            pipe.publish(self.channel, revocation_message(kind, ident, expires_at))
            await pipe.execute()


def _ttl(expires_at: int) -> int:
    # A TTL of at least one second: an entry for a token that expires this very second must
    # still exist for that second.
    return max(1, math.ceil(expires_at - time.time()))

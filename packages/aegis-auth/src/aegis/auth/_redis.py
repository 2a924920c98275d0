"""The production :class:`~aegis.auth.TokenStore`: Redis, shared by every process of a service.

Needs the ``redis`` extra. Each entry is one key with a TTL ending when the token it concerns
expires, so the store never grows past the live tokens: ``<prefix>revoked:<jti>``,
``<prefix>family:<family>`` and ``<prefix>used:<jti>``. A revocation key holds its expiry (Unix
seconds) and is announced on the channel ``<prefix>revocations`` in the same transaction, so a
:class:`~aegis.auth.ReplicatedTokenStore` in any process learns it at once. On a Redis Cluster
the prefix is a hash tag (``{users:}revoked:<jti>``): every key and the channel of a prefix live
in one slot, so one node holds them all and a revocation stays one atomic step.
"""

from __future__ import annotations

import json
import math
import time
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.cluster import RedisCluster

RevocationKind = Literal["jti", "family"]
"""What a revocation names: one token (``jti``) or a refresh-token family."""

KEY_KINDS: dict[RevocationKind, str] = {"jti": "revoked", "family": "family"}
"""The key infix of each kind of revocation: ``<prefix>revoked:<jti>``, ``<prefix>family:<id>``."""

# A revocation on a Redis Cluster, where MULTI cannot hold a PUBLISH: the key and the message in
# one script, run on the node of the key's slot, which is also the channel's (the hash tag).
_REVOKE_SCRIPT = """
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return redis.call('PUBLISH', ARGV[3], ARGV[4])
"""


def is_cluster(client: object) -> bool:
    """Whether ``client`` is a ``redis.asyncio.RedisCluster``."""
    try:
        from redis.asyncio.cluster import RedisCluster  # the redis extra the client comes from
    except ImportError:
        return False
    return isinstance(client, RedisCluster)


def has_hash_tag(prefix: str) -> bool:
    """Whether ``prefix`` holds a Redis Cluster hash tag (``{...}`` with something inside)."""
    start = prefix.find("{")
    return start >= 0 and prefix.find("}", start + 1) > start + 1


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
    ``MULTI``/``EXEC`` (on a Redis Cluster, one script): a subscriber either sees the message
    or finds the key when it scans.

    Args:
        client: a ``redis.asyncio.Redis`` client, or a ``RedisCluster``; the caller owns (and
            closes) it.
        prefix: prefix of every key, to share a Redis between services or tests. On a
            cluster it is made a hash tag (``"users:"`` becomes ``"{users:}"``) unless it has
            one, so every key of the store is in one slot.

    Example:
        >>> from redis.asyncio import Redis
        >>> store = RedisTokenStore(Redis.from_url("redis://localhost:6379/0"), prefix="users:")

    .. versionchanged:: unreleased
        Revocation keys hold their expiry instead of ``1``, and each revocation is published
        on ``<prefix>revocations``.
    """

    def __init__(self, client: Redis | RedisCluster, *, prefix: str = "aegis:auth:") -> None:
        self.client = client
        """The Redis client (owned by the caller)."""
        self.cluster = is_cluster(client)
        """Whether the client is a Redis Cluster client."""
        if self.cluster and not has_hash_tag(prefix):
            prefix = f"{{{prefix}}}"
        self.prefix = prefix
        """The prefix of every key and of the channel (on a cluster, with its hash tag)."""
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
        message = revocation_message(kind, ident, expires_at)
        if self.cluster:
            key, ttl = self.key(kind, ident), _ttl(expires_at)
            await self.client.eval(_REVOKE_SCRIPT, 1, key, expires_at, ttl, self.channel, message)
            return
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.set(self.key(kind, ident), str(expires_at), ex=_ttl(expires_at))
            pipe.publish(self.channel, message)
            await pipe.execute()


def _ttl(expires_at: int) -> int:
    # A TTL of at least one second: an entry for a token that expires this very second must
    # still exist for that second.
    return max(1, math.ceil(expires_at - time.time()))

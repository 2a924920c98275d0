"""ReplicatedTokenStore: every revocation in Redis, also kept in this process's memory.

The replica is fed by ``<prefix>revocations`` (see :mod:`aegis.auth._replica_sync`), so a
token revoked by any service is refused here without a round trip. It answers only while it is
known complete up to ``max_staleness`` seconds ago; beyond that each check asks Redis, and when
Redis does not answer either, ``when_stale`` decides.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from redis.exceptions import RedisClusterException, RedisError

from aegis.auth._errors import RevocationUnavailableError
from aegis.auth._metrics import AuthMetrics
from aegis.auth._redis import RedisTokenStore, RevocationKind
from aegis.auth._replica_sync import RevocationListener, Throttle
from aegis.core.errors import ConfigurationError

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from redis.asyncio import Redis
    from redis.asyncio.cluster import RedisCluster

_LOGGER = logging.getLogger("aegis.auth")
_WARN_EVERY = 10.0  # seconds between two WARNING lines about the same trouble
WhenStale = Literal["closed", "open"]
"""What a stale replica does when Redis does not answer: refuse (503) or let the token pass."""


class LocalRevocations:
    """The revocations of one prefix, in memory, with expiries; swept as they expire.

    ``complete_as_of`` is the monotonic time up to which every revocation is known to be here;
    answers are given only until ``max_staleness`` seconds after it. Expiries are Unix times
    (``wall_clock``).
    """

    def __init__(
        self,
        max_staleness: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.max_staleness = max_staleness
        self._wall_clock = wall_clock
        self.tables: dict[RevocationKind, dict[str, int]] = {"jti": {}, "family": {}}
        self._jtis = self.tables["jti"]
        self._families = self.tables["family"]
        self._expiries: list[tuple[int, RevocationKind, str]] = []
        self._clock = clock
        self._created = clock()
        self.complete_as_of: float | None = None
        self._fresh_until = -math.inf

    def add(self, kind: RevocationKind, ident: str, expires_at: int) -> None:
        """Remember a revocation until ``expires_at`` (Unix seconds); the later expiry wins."""
        table = self.tables[kind]
        if expires_at > table.get(ident, 0) and expires_at > self._wall_clock():
            table[ident] = expires_at
            heapq.heappush(self._expiries, (expires_at, kind, ident))

    def sweep(self) -> None:
        """Forget the revocations whose tokens have expired."""
        now = self._wall_clock()
        expiries = self._expiries
        while expiries and expiries[0][0] <= now:
            until, kind, ident = heapq.heappop(expiries)
            table = self.tables[kind]
            if table.get(ident) == until:  # else a later revocation of the same id replaced it
                del table[ident]

    def mark_complete(self, as_of: float) -> None:
        """Every revocation made before ``as_of`` (monotonic) is here."""
        if self.complete_as_of is None or as_of > self.complete_as_of:
            self.complete_as_of = as_of
            self._fresh_until = as_of + self.max_staleness

    def staleness(self) -> float:
        """Seconds since the replica was last known complete (since creation if never)."""
        since = self._created if self.complete_as_of is None else self.complete_as_of
        return max(0.0, self._clock() - since)

    @property
    def fresh(self) -> bool:
        """Whether the replica may answer: known complete within ``max_staleness``."""
        return self._clock() <= self._fresh_until

    def revoked_nowait(self, jti: str, family: str | None) -> bool | None:
        """Whether ``jti`` or ``family`` is revoked; ``None`` when the replica is stale."""
        if self._clock() > self._fresh_until:
            return None
        until = self._jtis.get(jti)
        if until is not None and until > self._wall_clock():
            return True
        if family is None:
            return False
        until = self._families.get(family)
        return until is not None and until > self._wall_clock()


class ReplicatedTokenStore:
    """A :class:`~aegis.auth.RedisTokenStore` with an in-process replica of its revocations.

    Every service that verifies the same issuer's tokens uses one on the same Redis and
    ``prefix``: a revocation made by any of them (``SET`` and ``PUBLISH`` on
    ``<prefix>revocations`` in one transaction) reaches every replica within milliseconds, and
    the revocation check of a request costs a dictionary lookup, no I/O (so
    :meth:`~aegis.auth.TokenService.verify_nowait` answers cached tokens synchronously).

    :meth:`start` subscribes first and then loads every live revocation (``SCAN`` of
    ``<prefix>revoked:*`` and ``<prefix>family:*``), so nothing made in between is missed; it
    does the same after every reconnection. A heartbeat (``PING`` on the subscription every
    ``max_staleness / 3`` seconds) proves the replica complete: the replica answers only while
    it was complete ``max_staleness`` seconds ago. When stale, :meth:`is_revoked` asks Redis
    (one ``MGET``, bounded by ``check_timeout``); if Redis does not answer either,
    ``when_stale="closed"`` raises :class:`~aegis.auth.RevocationUnavailableError` (503) and
    ``"open"`` lets the token pass, logged (WARNING, throttled) and counted in
    ``aegis_auth_revocation_fail_open_total``.

    Refresh tokens are consumed in Redis (``SET NX``), as with ``RedisTokenStore``; revocations
    written here are also applied to this replica at once. A revocation seen once is kept until
    it expires, even if Redis loses it.

    Args:
        client: a ``redis.asyncio.Redis`` client, or a ``RedisCluster``; the caller owns (and
            closes) it. The subscription takes one connection of its pool (on a cluster, of
            the node that holds the prefix's slot).
        prefix: prefix of the keys and the channel: the same in every service that shares them
            (on a cluster made a hash tag, see :class:`~aegis.auth.RedisTokenStore`).
        max_staleness: seconds a replica that lost its channel keeps answering from memory;
            also the bound on how late a revocation can be honoured when the channel breaks.
        when_stale: ``"closed"`` (default) refuses with 503, ``"open"`` accepts, when the
            replica is stale and Redis does not answer.
        check_timeout: how long the direct Redis check of a stale replica may take.
        metrics_registry: Prometheus registry of the ``aegis_auth_revocation_*`` metrics.

    Example:
        >>> store = ReplicatedTokenStore(
        ...     Redis.from_url("redis://localhost:6379/0"), prefix="users:"
        ... )
        >>> await store.start()  # in the application's lifespan; await store.close() at the end
        >>> tokens = TokenService(keys, issuer="users", audience="aegis", store=store)
    """

    def __init__(
        self,
        client: Redis | RedisCluster,
        *,
        prefix: str = "aegis:auth:",
        max_staleness: float = 5.0,
        when_stale: WhenStale = "closed",
        check_timeout: float = 1.0,
        metrics_registry: CollectorRegistry | None = None,
    ) -> None:
        if not max_staleness > 0 or not check_timeout > 0:
            raise ConfigurationError("max_staleness and check_timeout must be positive seconds")
        if when_stale not in ("closed", "open"):
            raise ConfigurationError(f"when_stale must be 'closed' or 'open', not {when_stale!r}")
        self.redis = RedisTokenStore(client, prefix=prefix)
        """The store in Redis that writes and fallback checks go to."""
        self.when_stale: WhenStale = when_stale
        self.check_timeout = check_timeout
        self.replica = LocalRevocations(max_staleness)
        """The revocations in memory."""
        self._metrics = AuthMetrics.for_registry(metrics_registry)
        self._open_warning = Throttle(_WARN_EVERY)
        self._listener = RevocationListener(
            self.redis, self.replica, metrics=self._metrics, warning=Throttle(_WARN_EVERY)
        )

    @property
    def max_staleness(self) -> float:
        """Seconds the replica keeps answering after it was last known complete."""
        return self.replica.max_staleness

    async def start(self, timeout: float | None = None) -> bool:
        """Start following the revocations; wait until loaded (at most ``timeout`` seconds).

        Returns whether the replica is loaded. When it is not (Redis down), it keeps trying in
        the background and checks go to Redis meanwhile (see the class). ``timeout`` defaults
        to ``max_staleness``. Calling it again is harmless.
        """
        self._listener.start()
        self._metrics.revocation_staleness.replicas.add(self.replica)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.max_staleness if timeout is None else timeout):
                await self._listener.synced.wait()
        return self.replica.fresh

    async def close(self) -> None:
        """Stop following the revocations (the client stays open: its owner closes it)."""
        self._metrics.revocation_staleness.replicas.discard(self.replica)
        await self._listener.stop()

    @property
    def revoked_nowait(self) -> Callable[[str, str | None], bool | None]:
        """``revoked_nowait(jti, family)``: revoked or not, from memory; ``None`` when stale.

        The replica's own method: the check of every request is one call, not two.
        """
        return self.replica.revoked_nowait

    async def is_revoked(self, jti: str, family: str | None) -> bool:
        """Whether ``jti`` or ``family`` is revoked: from memory, or from Redis when stale.

        Raises:
            RevocationUnavailableError: stale, Redis does not answer and ``when_stale`` is
                ``"closed"``.
        """
        known = self.replica.revoked_nowait(jti, family)
        if known is not None:
            return known
        try:
            async with asyncio.timeout(self.check_timeout):
                return await self.redis.is_revoked(jti, family)
        # A cluster client that reaches no node raises RedisClusterException, not a RedisError.
        except (RedisError, RedisClusterException, OSError, TimeoutError) as exc:
            return self._unanswerable(exc)

    def _unanswerable(self, exc: BaseException) -> bool:
        staleness = self.replica.staleness()
        if self.when_stale == "open":
            self._metrics.revocation_fail_open.inc()
            if self._open_warning.ready():
                _LOGGER.warning(
                    "revocations: replica %.1f s stale and Redis unreachable (%r); tokens are "
                    "accepted unchecked (when_stale='open')",
                    staleness,
                    exc,
                )
            return False
        self._metrics.revocation_fail_closed.inc()
        raise RevocationUnavailableError(
            "Whether the token is revoked cannot be checked right now; retry shortly.",
            details={"staleness_seconds": round(staleness, 1)},
        ) from exc

    async def revoke(self, jti: str, *, expires_at: int) -> None:
        """Revoke the token ``jti`` until ``expires_at``: here at once, everywhere via Redis."""
        self.replica.add("jti", jti, expires_at)
        await self.redis.revoke(jti, expires_at=expires_at)

    async def revoke_family(self, family: str, *, expires_at: int) -> None:
        """Revoke every token of ``family`` until ``expires_at``: here and via Redis."""
        self.replica.add("family", family, expires_at)
        await self.redis.revoke_family(family, expires_at=expires_at)

    async def consume(self, jti: str, *, expires_at: int) -> bool:
        """Mark the refresh token ``jti`` used, in Redis: ``True`` for the first caller only."""
        return await self.redis.consume(jti, expires_at=expires_at)

    async def health_check(self) -> dict[str, Any]:
        """A health check: details while the replica is fresh, raises when it is stale.

        Any check registry that reads "returned" as healthy and "raised" as unhealthy takes it
        (aegis-obs: ``health.add("revocations", store.health_check)``).

        Returns:
            ``staleness_seconds``, ``revoked_tokens``, ``revoked_families`` and ``when_stale``.

        Raises:
            RevocationUnavailableError: the replica is stale (not loaded yet, or its channel
                has been down longer than ``max_staleness``).
        """
        self.replica.sweep()
        staleness = self.replica.staleness()
        details: dict[str, Any] = {
            "staleness_seconds": round(staleness, 3),
            "revoked_tokens": len(self.replica.tables["jti"]),
            "revoked_families": len(self.replica.tables["family"]),
            "when_stale": self.when_stale,
        }
        if not self.replica.fresh:
            raise RevocationUnavailableError(
                f"the revocation replica is {staleness:.1f} s stale (max_staleness "
                f"{self.max_staleness:g} s): its channel {self.redis.channel!r} is not synced",
                details=details,
            )
        return details

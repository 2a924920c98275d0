"""Service: the components bootstrap() built from the settings, their health checks and lifetime.

Each optional member is imported only when its settings are present, so a service installs
only the extras it uses.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Final

from prometheus_client import CollectorRegistry

from aegis.core.errors import ConfigurationError
from aegis.core.paths import PathMatcher
from aegis.obs import (
    HealthCheckError,
    HealthRegistry,
    http_check,
    kafka_check,
    setup_tracing,
    sqlalchemy_check,
)
from aegis.service._settings import ServiceSettings

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider
    from starlette.applications import Starlette

    from aegis.auth import (
        JWKSClient,
        KeySet,
        ReplicatedTokenStore,
        RolePolicy,
        TokenService,
        TokenStore,
    )
    from aegis.cache import Cache, RateLimiter
    from aegis.db import DatabaseManager
    from aegis.msg import AsyncAPI, EventPublisher, Outbox, OutboxRelay, Transport
    from aegis.service._settings import AuthSettings

_LOGGER: Final = logging.getLogger("aegis.service")
_REDIS_TIMEOUT: Final = 2.0  # seconds per Redis reply of the revocation store (writes, checks)
Hook = Callable[[], Awaitable[None]]


class Service:
    """What :func:`~aegis.service.bootstrap` built for one application, and its lifetime.

    Every component is ``None`` when its settings are: ``db`` (a
    :class:`~aegis.db.DatabaseManager`), ``cache`` (a :class:`~aegis.cache.Cache`),
    ``tokens`` and ``keys`` (a :class:`~aegis.auth.TokenService` and the
    :class:`~aegis.auth.KeySet` it signs with), ``jwks`` (the
    :class:`~aegis.auth.JWKSClient` of a service that verifies tokens issued elsewhere),
    ``revocations`` (the :class:`~aegis.auth.ReplicatedTokenStore` of
    ``AuthSettings.revocation_redis_url``, or the one given as ``token_store``),
    ``transport`` and ``publisher`` (aegis-msg; with an ``outbox``, its ``relay``; and
    ``asyncapi``, the :class:`~aegis.msg.AsyncAPI` document served at ``/asyncapi``: declare
    the events the service sends and its subscribers on it),
    ``rate_limiter``. ``health`` holds one check
    per configured component. The application's lifespan starts them (:meth:`start`) before
    the app's own start-up and stops them (:meth:`stop`) after its shutdown, in reverse order.

    Attributes:
        settings: the settings it was built from.
        app: the application it serves.
        health: the checks behind ``/health`` and ``/health/ready``.
        registry: the Prometheus registry of the request metrics and ``/metrics``.
    """

    def __init__(
        self,
        app: Starlette,
        settings: ServiceSettings,
        *,
        registry: CollectorRegistry | None = None,
        policy: RolePolicy | None = None,
        token_store: TokenStore | None = None,
        transport: Transport | None = None,
        outbox: Outbox | None = None,
    ) -> None:
        self.app = app
        self.settings = settings
        self.registry = registry
        self.health = HealthRegistry(
            cache_seconds=settings.health_interval_seconds,
            default_timeout=settings.health_timeout_seconds,
        )
        self.db: DatabaseManager | None = None
        self.cache: Cache | None = None
        self.keys: KeySet | None = None
        self.tokens: TokenService | None = None
        self.jwks: JWKSClient | None = None
        self.revocations: ReplicatedTokenStore | None = None
        self.transport: Transport | None = None
        self.publisher: EventPublisher | None = None
        self.asyncapi: AsyncAPI | None = None
        self.rate_limiter: RateLimiter | None = None
        self.relay: OutboxRelay | None = None
        self.public_paths = PathMatcher(())
        """The paths that need no token (health, metrics, JWKS, docs and the settings')."""
        self._on_start: list[Hook] = []
        self._on_stop: list[Hook] = []
        self.started = False
        self.tracer_provider: TracerProvider | None = None
        """The process's OpenTelemetry provider made from ``settings.tracing``, if any."""
        if settings.tracing is not None:
            self._build_tracing()
        if settings.database is not None:
            self._build_database()
        if settings.cache is not None:
            self._build_cache()
        if settings.kafka is not None or transport is not None or outbox is not None:
            self._build_messaging(transport)
        if outbox is not None:
            self._build_relay(outbox)
        if settings.auth is not None:
            self._build_auth(policy, token_store)
        if settings.rate_limit is not None:
            self._build_rate_limiter()

    def _build_tracing(self) -> None:
        tracing = self.settings.tracing
        assert tracing is not None  # checked by the caller
        attributes = {"service.version": self.settings.version} if self.settings.version else {}
        provider = setup_tracing(
            self.settings.name,
            tracing.exporter(),
            batch=tracing.batch,
            sampler=tracing.sampler(),
            resource_attributes=attributes,
        )
        self.tracer_provider = provider

        async def flush_spans() -> None:  # the first hook added, so the last run: every span
            await asyncio.to_thread(provider.shutdown)

        self._on_stop.append(flush_spans)

    def _build_database(self) -> None:
        from aegis.db import DatabaseManager  # the db extra

        assert self.settings.database is not None  # checked by the caller
        db = self.db = DatabaseManager(self.settings.database, registry=self.registry)
        self.health.add("database", sqlalchemy_check(db.engine))
        self._on_stop.append(db.dispose)

    def _build_cache(self) -> None:
        from aegis.cache import Cache  # the cache extra

        cache = self.cache = Cache(self.settings.cache, registry=self.registry)

        async def start_cache() -> None:
            if not await cache.start():
                _LOGGER.warning("the cache does not answer at start-up; /health/ready says so")

        async def check_cache() -> dict[str, object]:
            return dict(await cache.health_check())

        self.health.add("cache", check_cache)
        self._on_start.append(start_cache)
        self._on_stop.append(cache.close)

    def _build_messaging(self, shared: Transport | None) -> None:
        from aegis.msg import AsyncAPI, EventPublisher, make_transport  # the msg extra

        kafka = self.settings.kafka
        if shared is not None:  # its owner starts and stops it (a transport several apps share)
            transport = self.transport = shared
        else:
            # Without Kafka settings: the in-process transport (development, one-process demos).
            transport = self.transport = make_transport(kafka, metrics_registry=self.registry)
            self._on_start.append(transport.start)
            self._on_stop.append(transport.close)
        self.publisher = EventPublisher(
            transport, source=self.settings.name, metrics_registry=self.registry
        )
        # Built per request: what the app declares later, and what was published, is in it.
        self.asyncapi = AsyncAPI(
            title=self.settings.name, version=self.settings.version or "0.0.0", kafka=kafka
        )
        self.asyncapi.publisher(self.publisher)
        if kafka is not None:
            self.health.add("broker", kafka_check(kafka.client_config()))

    def _build_relay(self, outbox: Outbox) -> None:
        from sqlalchemy import func, select  # the db extra

        from aegis.msg import OutboxRelay  # the msg extra

        if self.db is None or self.transport is None:
            raise ConfigurationError(
                "an outbox needs a database: set ServiceSettings.database (DatabaseSettings)"
            )
        engine = self.db.engine
        relay = self.relay = OutboxRelay(
            engine,
            self.transport,
            outbox=outbox,
            max_pending_age=self.settings.outbox_max_pending_age_seconds,
            metrics_registry=self.registry,
        )
        limit = self.settings.outbox_max_backlog
        pending = select(func.count()).select_from(outbox.table)
        pending = pending.where(outbox.table.c.sent_at.is_(None))

        async def check_outbox() -> dict[str, object]:
            async with engine.connect() as connection:
                backlog = int((await connection.execute(pending)).scalar_one())
            details: dict[str, object] = {"backlog": backlog, "last_error": relay.status.last_error}
            if backlog > limit:
                raise HealthCheckError(
                    f"{backlog} outbox events wait to be published (more than {limit})",
                    details=details,
                )
            return details

        # Not critical: a backlog is a reason to look, not to take the service out of rotation.
        self.health.add("outbox", check_outbox, critical=False)
        # Critical: events that cannot get out (a broker down, a stuck relay) for longer than the
        # bound take the service out of rotation until the backlog drains.
        self.health.add("outbox_age", relay.health_check)
        self._on_start.append(relay.start)
        self._on_stop.append(relay.stop)

    def _build_auth(self, policy: RolePolicy | None, store: TokenStore | None) -> None:
        from aegis.auth import JWKSClient, JWTKey, KeySet, TokenService

        auth = self.settings.auth
        assert auth is not None  # checked by the caller
        if auth.revocation_redis_url is not None:
            if store is not None:
                raise ConfigurationError(
                    "give bootstrap() a token_store or set AuthSettings.revocation_redis_url, "
                    "not both"
                )
            store = self._build_revocations(auth)
        self._follow_revocations(store)
        if auth.jwks_url is not None:
            jwks = self.jwks = JWKSClient(auth.jwks_url, metrics_registry=self.registry)
            keys = KeySet()
            self.health.add("jwks", http_check(auth.jwks_url))
            self._on_stop.append(jwks.aclose)
        elif auth.signing_key is None:
            keys = KeySet([JWTKey.generate(auth.key_id, auth.algorithm)])
        elif auth.algorithm.startswith("HS"):
            keys = KeySet([JWTKey.hmac(auth.key_id, auth.signing_key, auth.algorithm)])
        else:
            keys = KeySet([JWTKey.from_pem(auth.key_id, auth.signing_key, auth.algorithm)])
        self.keys = keys
        self.tokens = TokenService(
            keys,
            issuer=auth.issuer,
            audience=auth.audience,
            access_ttl=timedelta(seconds=auth.access_ttl_seconds),
            refresh_ttl=timedelta(seconds=auth.refresh_ttl_seconds),
            store=store,
            policy=policy,
            jwks=self.jwks,
            metrics_registry=self.registry,
        )

    def _build_revocations(self, auth: AuthSettings) -> ReplicatedTokenStore:
        """The shared revocations of ``auth``: a replica of Redis's, owned by this service."""
        assert auth.revocation_redis_url is not None  # checked by the caller
        try:
            from aegis.auth import ReplicatedTokenStore  # its redis extra
            from aegis.service._redis import redis_client
        except ImportError as exc:
            raise ConfigurationError(
                "AuthSettings.revocation_redis_url needs redis: "
                "pip install 'aegis-service[revocation]'"
            ) from exc
        # A redis://, redis+cluster:// or redis+sentinel:// URL, as the cache takes.
        url = auth.revocation_redis_url.get_secret_value()
        client, close = redis_client(url, timeout=_REDIS_TIMEOUT)
        self._on_stop.append(close)  # after the replica's close (stops run reversed)
        return ReplicatedTokenStore(
            client,
            prefix=auth.revocation_key_prefix,
            max_staleness=auth.revocation_max_staleness_seconds,
            when_stale=auth.revocation_when_stale,
            metrics_registry=self.registry,
        )

    def _follow_revocations(self, store: TokenStore | None) -> None:
        """Start and stop a revocation replica with the app, and check it for readiness."""
        try:
            from aegis.auth import ReplicatedTokenStore  # aegis-auth[redis]
        except ImportError:
            return  # then no store can be one
        if not isinstance(store, ReplicatedTokenStore):
            return
        replica = self.revocations = store

        async def start_revocations() -> None:
            if not await replica.start():
                _LOGGER.warning(
                    "the revocations are not loaded at start-up (Redis unreachable?); checks "
                    "go to Redis until they are, and /health/ready says so"
                )

        # Critical when failing closed: a stale replica with Redis down answers 503 anyway.
        self.health.add("revocations", replica.health_check, critical=store.when_stale == "closed")
        self._on_start.append(start_revocations)
        self._on_stop.append(replica.close)

    def _build_rate_limiter(self) -> None:
        from aegis.cache import RateLimiter  # the cache extra

        limit = self.settings.rate_limit
        assert limit is not None  # checked by the caller
        if self.cache is None:
            raise ConfigurationError(
                "rate_limit needs a cache: set ServiceSettings.cache (CacheSettings(url=...))"
            )
        self.rate_limiter = RateLimiter(
            self.cache,
            limit.limit,
            limit.period_seconds,
            name="requests",
            fail_open=limit.fail_open,
        )

    def on_start(self, hook: Hook) -> Hook:
        """Run ``hook`` at start-up, after the components started (usable as a decorator)."""
        self._on_start.append(hook)
        return hook

    def on_stop(self, hook: Hook) -> Hook:
        """Run ``hook`` at shutdown, before the components stop (usable as a decorator)."""
        self._on_stop.append(hook)
        return hook

    async def start(self) -> None:
        """Start the components in order; the application's lifespan calls it."""
        for hook in self._on_start:
            await hook()
        self.started = True

    async def stop(self) -> None:
        """Stop the components in reverse order; one that fails to stop does not stop the rest."""
        self.started = False
        for hook in reversed(self._on_stop):
            try:
                await hook()
            except Exception:
                _LOGGER.exception("stopping %s failed", getattr(hook, "__qualname__", hook))

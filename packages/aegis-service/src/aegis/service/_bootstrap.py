"""bootstrap(): one call wires the aegis packages into a Starlette or FastAPI application."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any, Final, TypeGuard

from prometheus_client import CollectorRegistry
from starlette.middleware import Middleware
from starlette.routing import BaseRoute

from aegis.core.errors import DEFAULT_PROBLEM_TYPE_BASE, ConfigurationError
from aegis.core.paths import PathMatcher
from aegis.core.web import UnhandledErrorMiddleware, install_error_handlers
from aegis.log import LogOutput, RequestLoggingMiddleware, configure_logging, configure_sentry
from aegis.obs import ObservabilityMiddleware, health_routes, metrics_route
from aegis.service._openapi import document_openapi
from aegis.service._pages import page_routes, public_page_paths
from aegis.service._service import Service
from aegis.service._settings import ServiceSettings
from aegis.service._uvicorn import adopt_uvicorn_logging

if TYPE_CHECKING:
    from fastapi import FastAPI
    from opentelemetry.trace import TracerProvider
    from starlette.applications import Starlette

    from aegis.auth import RolePolicy, TokenStore
    from aegis.msg import Outbox, Transport

_FASTAPI_DOCS: Final = ("/docs*", "/redoc*", "/openapi.json")
Lifespan = Callable[[Any], AbstractAsyncContextManager[Any]]


def bootstrap(
    app: Starlette,
    settings: ServiceSettings,
    *,
    policy: RolePolicy | None = None,
    token_store: TokenStore | None = None,
    registry: CollectorRegistry | None = None,
    tracer_provider: TracerProvider | None = None,
    log_outputs: Sequence[LogOutput] = (),
    transport: Transport | None = None,
    outbox: Outbox | None = None,
) -> Service:
    """Wire every configured aegis component into ``app`` (Starlette or FastAPI) in one call.

    It configures logging (``settings.log``, with the service name; Sentry too when
    ``settings.sentry_dsn`` is set), builds the components
    the settings name (database, cache, token service, event publisher, rate limiter: see
    :class:`Service`) and installs, in this order from the outside in:

    1. :class:`~aegis.obs.ObservabilityMiddleware`: the request's SERVER span and metrics;
       outermost, so the span is current for every line below, the access line included,
       and the duration covers everything (FastAPI's own request tracing is turned off,
       unless ``FastAPI(telemetry={"tracer_provider": ...})`` asked for it: then FastAPI's
       span is the one span);
    2. :class:`~aegis.log.RequestLoggingMiddleware`: the request id (and ``X-Request-ID``)
       and one access line, for every answer below, a 401 or 429 included;
    3. :class:`~aegis.core.web.UnhandledErrorMiddleware`: an unhandled exception, in the
       app or in a middleware below, answered as a 500 problem carrying the request id and
       logged once with its stack trace; with read replicas,
       :class:`~aegis.db.ReadYourWritesMiddleware`: a client's requests read their own writes
       (cookie ``<name>_read_after``);
    4. :class:`~aegis.auth.AuthMiddleware` (``settings.auth``): the caller, so the access
       line above carries ``user_id``; health, metrics, JWKS and the FastAPI docs are public;
    5. :class:`~aegis.cache.RateLimitMiddleware` (``settings.rate_limit``): after
       authentication, so the limit can be per user;

    then the middleware the app already had. It also installs the problem+json error
    handlers, ``/metrics``, ``/health``, ``/health/live`` and ``/health/ready`` (a check per
    configured component), the JWKS route of a service that issues tokens, one lifespan that
    starts the components before the app's own lifespan and stops them after it, uvicorn's
    loggers routed through aegis-log (its access log off: the access line replaces it),
    the pages of ``settings.pages`` (``/asyncapi`` with a transport, ``/schema`` with a schema
    registry; public unless ``pages.public`` is false), and on FastAPI the bearer security
    scheme, problem+json answers and those pages in the OpenAPI document.

    Call it once, after creating the app and before it serves. Middleware added to the app
    afterwards runs outside all of the above.

    Args:
        app: the application.
        settings: what to wire.
        policy: the roles and permissions for tokens (aegis-auth).
        token_store: where revocations and refresh families live; without one (and without
            ``settings.auth.revocation_redis_url``, which builds a
            :class:`~aegis.auth.ReplicatedTokenStore` on that Redis) revocation is off. A
            ``ReplicatedTokenStore`` given here is started and stopped with the app (its client
            stays the caller's) and checked for readiness as ``revocations`` (critical when it
            fails closed).
        registry: the Prometheus registry of the request metrics, of the components' metrics
            and of ``/metrics``; the default registry when ``None``.
        tracer_provider: the OpenTelemetry provider of the request spans; when ``None``,
            the one made from ``settings.tracing`` (installed as the process's global
            provider, flushed at shutdown), else the global one.
        log_outputs: more aegis-log outputs besides those ``settings.log`` describes.
        transport: an aegis-msg transport to publish through, started and stopped by its
            owner (one several apps share); by default one is made from ``settings.kafka``
            (the in-process transport when that is ``None`` and an outbox is given).
        outbox: the service's transactional outbox (aegis-msg): an ``OutboxRelay`` publishes
            it while the app runs (``service.relay``), and the ``outbox`` check reports its
            backlog (non-critical: above ``settings.outbox_max_backlog`` it degrades
            ``/health``, not readiness).

    Returns:
        The :class:`Service` with everything built; also ``app.state.service``.

    Raises:
        ConfigurationError: the app already serves, ``bootstrap`` already ran on it, or a
            setting is inconsistent (a rate limit without a cache, an outbox without a
            database, a ``token_store`` and ``revocation_redis_url`` both given).

    Example:
        >>> app = FastAPI()
        >>> service = bootstrap(app, Settings.load())
    """
    if getattr(app.state, "service", None) is not None:
        raise ConfigurationError("bootstrap() already ran on this app: call it once")
    if app.middleware_stack is not None:
        raise ConfigurationError("bootstrap() must run before the app serves its first request")
    if settings.log is not None:
        log_settings = settings.log
        if log_settings.service_name is None:
            log_settings = log_settings.model_copy(update={"service_name": settings.name})
        configure_logging(log_settings, outputs=log_outputs)
        if settings.sentry_dsn is not None:
            configure_sentry(
                settings.sentry_dsn,
                environment=settings.environment.value,
                release=f"{settings.name}@{settings.version}" if settings.version else None,
                sensitive_keys=log_settings.sensitive_keys,
                mask=log_settings.mask,
                mask_pii=log_settings.mask_pii,
            )
    # The aegis access line replaces uvicorn's, whoever configures logging.
    adopt_uvicorn_logging(server_loggers=settings.log is not None)
    service = Service(
        app,
        settings,
        registry=registry,
        policy=policy,
        token_store=token_store,
        transport=transport,
        outbox=outbox,
    )
    type_base = settings.problem_type_base or DEFAULT_PROBLEM_TYPE_BASE
    install_error_handlers(app, type_base=type_base)
    public = _public_paths(app, settings)
    service.public_paths = PathMatcher(public)
    provider = tracer_provider or service.tracer_provider
    app.user_middleware[0:0] = _middleware(service, public, type_base, provider)
    app.router.routes.extend(_routes(service))
    app.router.lifespan_context = _lifespan(service, app.router.lifespan_context)
    app.state.service = service
    if _is_fastapi(app):
        document_openapi(app, service)
        _trace_with_aegis_obs(app)
    return service


def _trace_with_aegis_obs(app: FastAPI) -> None:
    """Let aegis-obs open the request's one SERVER span, unless FastAPI's was asked for.

    FastAPI (0.16x) traces each request itself once any tracer provider is set, and
    aegis-obs then opens no second span. FastAPI's span knows no route for a request refused
    before routing (a 401), traces the quiet paths and uses the global provider, not the one
    given to bootstrap(); aegis-obs's does all three right. So FastAPI's own tracing is turned
    off, unless the app named a provider for it (``FastAPI(telemetry={"tracer_provider":
    ...})``): then its span is the one span. FastAPI keeps these settings in
    ``app._telemetry`` (private) and reads them at every request; a FastAPI without them
    traces nothing itself.
    """
    config = getattr(app, "_telemetry", None)
    if isinstance(config, dict) and "tracing" in config and config.get("tracer_provider") is None:
        config["tracing"] = False


def _is_fastapi(app: Starlette) -> TypeGuard[FastAPI]:
    try:
        from fastapi import FastAPI  # the fastapi extra
    except ImportError:
        return False
    return isinstance(app, FastAPI)


def _public_paths(app: Starlette, settings: ServiceSettings) -> list[str]:
    public = [settings.metrics_path, f"{settings.health_path}*"]
    if settings.auth is not None:
        from aegis.auth import JWKS_PATH  # the auth extra

        public += [JWKS_PATH, *settings.auth.public_paths]
    if _is_fastapi(app):
        public += _FASTAPI_DOCS
    return public + public_page_paths(settings.pages)


def _middleware(
    service: Service, public: list[str], type_base: str, tracer_provider: TracerProvider | None
) -> list[Middleware]:
    settings = service.settings
    stack = [
        Middleware(
            ObservabilityMiddleware,
            registry=service.registry,
            exclude_paths=settings.quiet_paths,
            tracer_provider=tracer_provider,
        ),
        Middleware(
            RequestLoggingMiddleware, service_name=settings.name, skip_paths=settings.quiet_paths
        ),
        Middleware(UnhandledErrorMiddleware, type_base=type_base),
    ]
    database = settings.database
    if service.db is not None and database is not None and database.read_replica_urls:
        from aegis.db import ReadYourWritesMiddleware  # the db extra

        # A client's requests see its own writes: after one writes, its replica reads (and
        # those of the client's next requests, through a cookie) wait for that write or go
        # to the primary; other clients are not held back. A cookie per service: services
        # behind one domain share cookies, and each has its own database.
        cookie = re.sub(r"[^A-Za-z0-9_]", "_", settings.name) + "_read_after"
        stack.append(Middleware(ReadYourWritesMiddleware, db=service.db, cookie=cookie))
    if service.tokens is not None:
        from aegis.auth import AuthMiddleware  # the auth extra

        stack.append(
            Middleware(
                AuthMiddleware, tokens=service.tokens, public_paths=public, type_base=type_base
            )
        )
    if service.rate_limiter is not None and settings.rate_limit is not None:
        from aegis.cache import RateLimitMiddleware  # the cache extra

        stack.append(
            Middleware(
                RateLimitMiddleware,
                limiter=service.rate_limiter,
                key=settings.rate_limit.key,
                exempt=[settings.metrics_path, f"{settings.health_path}*"],
            )
        )
    return stack


def _routes(service: Service) -> list[BaseRoute]:
    settings = service.settings
    routes: list[BaseRoute] = [
        *health_routes(
            service.health,
            path=settings.health_path,
            service_id=settings.name,
            version=settings.version,
        ),
        metrics_route(settings.metrics_path, registry=service.registry),
    ]
    auth = settings.auth
    if (
        auth is not None
        and auth.publish_jwks
        and auth.jwks_url is None
        and service.keys is not None
    ):
        from aegis.auth import HMAC_ALGORITHMS, jwks_route  # the auth extra

        if auth.algorithm not in HMAC_ALGORITHMS:  # an HMAC secret is never published
            routes.append(jwks_route(service.keys))
    return routes + page_routes(service)


def _lifespan(service: Service, inner: Lifespan) -> Lifespan:
    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[Any]:
        # uvicorn may have configured its loggers after bootstrap() (uvicorn.run(app)).
        adopt_uvicorn_logging(server_loggers=service.settings.log is not None)
        await service.start()
        try:
            async with inner(app) as state:
                yield state
        finally:
            await service.stop()

    return lifespan

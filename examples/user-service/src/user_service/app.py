"""The user-service application: ``create_app(settings)`` wires the aegis packages together."""

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Response, status
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession
from user_events import UserCreated, UserDeleted, UserUpdated

from aegis.auth import (
    JWKS_PATH,
    AuthMiddleware,
    CurrentUser,
    InvalidCredentialsError,
    JWTKey,
    KeySet,
    MemoryTokenStore,
    PasswordService,
    PermissionDeniedError,
    RedisTokenStore,
    RolePolicy,
    ServiceAccount,
    ServiceAccounts,
    TokenService,
    TokenStore,
    jwks_route,
    require_owner,
    require_permissions,
    require_roles,
)
from aegis.cache import Cache
from aegis.core.models import CursorPage, PageParams, PaginatedResponse, SafeStr
from aegis.core.utils.security import hash_password
from aegis.core.utils.validation import PasswordPolicy, require_strong_password
from aegis.core.web import install_error_handlers
from aegis.db import DatabaseManager, Filter, session_dependency
from aegis.log import RequestLoggingMiddleware, get_logger
from aegis.msg import OutboxRelay, Transport, make_transport
from aegis.obs import (
    HealthRegistry,
    ObservabilityMiddleware,
    health_routes,
    metrics_route,
    sqlalchemy_check,
)
from user_service.models import (
    Login,
    Refresh,
    UserIn,
    UserOut,
    UserPatch,
    UserRepository,
    outbox,
    user_data,
)
from user_service.settings import Settings

log = get_logger("user_service")

ROLES = RolePolicy.from_dict(
    {
        "roles": {
            "admin": {"permissions": ["*:*"]},
            "user": {"permissions": ["policy:read", "policy:write"]},
            "viewer": {"permissions": ["user:read", "policy:read"]},
            "service": {"permissions": ["user:read"]},
        }
    }
)
"""Who may do what; policy-service loads the same roles."""

# Sign-up is public; reading users is not: "POST /users" opens one method of one path.
PUBLIC_PATHS = [
    "POST /users",
    "/auth/token",
    "/auth/refresh",
    "/oauth/token",
    JWKS_PATH,
    "/metrics",
    "/health*",
]


def create_app(  # noqa: PLR0915  # one readable wiring function: the point of the example
    settings: Settings, *, transport: Transport | None = None
) -> FastAPI:
    """Build the application; ``transport`` shares an event transport (the one-process demo)."""
    db = DatabaseManager(settings.database)
    cache = Cache(settings.cache)
    events = transport or make_transport(settings.kafka)
    redis = Redis.from_url(settings.redis_url.get_secret_value()) if settings.redis_url else None
    store: TokenStore = RedisTokenStore(redis, prefix="users:") if redis else MemoryTokenStore()
    keys = KeySet([JWTKey.generate(f"users-{uuid.uuid4().hex[:8]}", "EdDSA")])
    tokens = TokenService(
        keys, issuer=settings.jwt_issuer, audience=settings.jwt_audience, store=store, policy=ROLES
    )
    passwords = PasswordService()
    accounts = ServiceAccounts(
        [
            ServiceAccount(
                name="policy-service",
                client_id=settings.policy_service_client_id,
                secret_hash=hash_password(settings.policy_service_secret.get_secret_value()),
                scopes=frozenset({"user:read"}),
                audiences=frozenset({settings.jwt_audience}),
            )
        ],
        tokens,
    )
    relay = OutboxRelay(db.engine, events, outbox=outbox, interval=0.05)
    health = HealthRegistry(cache_seconds=1.0)
    health.add("database", sqlalchemy_check(db.engine))
    cursor_secret = settings.cursor_secret.get_secret_value().encode()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # The tables exist already: examples/schemas, created by aegis-schema's coordinator.
        await create_admin()
        if transport is None:
            await events.start()
        await relay.start()
        log.info("user-service started", port=settings.port)
        try:
            yield
        finally:
            await relay.stop()
            if transport is None:
                await events.close()
            await cache.close()
            if redis is not None:
                await redis.aclose()
            await db.dispose()

    async def create_admin() -> None:
        async with db.transaction() as session:
            users = UserRepository(session)
            if not await users.exists(email=settings.admin_email, include_deleted=True):
                password = settings.admin_password.get_secret_value()
                admin = await users.create(
                    {
                        "email": settings.admin_email,
                        "name": "Administrator",
                        "role": "admin",
                        "password_hash": await passwords.hash(password),
                    }
                )
                await outbox.add(session, UserCreated(data=user_data(admin)))

    app = FastAPI(title="user-service", lifespan=lifespan)
    install_error_handlers(app)
    app.router.routes.extend(
        [jwks_route(keys), accounts.token_route(), *health_routes(health), metrics_route()]
    )
    session_type = Annotated[AsyncSession, Depends(session_dependency(db), scope="function")]

    def repository(session: AsyncSession) -> UserRepository:
        return UserRepository(session, cursor_secret=cursor_secret)

    def cache_key(user_id: uuid.UUID) -> str:
        return f"user:{user_id}"

    @app.post("/users", status_code=status.HTTP_201_CREATED)
    async def register(body: UserIn, session: session_type) -> UserOut:
        email = body.email.lower()
        policy = PasswordPolicy(forbidden=[email.partition("@")[0], body.name])
        require_strong_password(body.password, policy)
        user = await repository(session).create(
            {
                "email": email,
                "name": body.name,
                "role": "user",
                "password_hash": await passwords.hash(body.password),
            }
        )
        await outbox.add(session, UserCreated(data=user_data(user)))
        return UserOut.model_validate(user)

    @app.post("/auth/token")
    async def login(body: Login, session: session_type) -> dict[str, Any]:
        found = await repository(session).list(email=body.email.lower(), limit=1)
        user = found[0] if found else None
        check = await passwords.verify(body.password, user.password_hash if user else None)
        if user is None or not check.valid:
            raise InvalidCredentialsError
        if check.new_hash:
            await repository(session).update(user.id, {"password_hash": check.new_hash})
        return tokens.issue_pair(str(user.id), roles=[user.role]).to_response()

    @app.post("/auth/refresh")
    async def refresh(body: Refresh) -> dict[str, Any]:
        return (await tokens.refresh(body.refresh_token)).to_response()

    @app.post("/auth/logout", status_code=status.HTTP_204_NO_CONTENT)
    async def logout(principal: CurrentUser) -> Response:
        if principal.family is not None:
            await tokens.revoke_family(principal.family)
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    @app.get("/users/me")
    async def me(principal: CurrentUser, session: session_type) -> UserOut:
        return UserOut.model_validate(await repository(session).get(uuid.UUID(principal.subject)))

    @app.get("/users/{user_id}")
    async def get_user(
        user_id: uuid.UUID, principal: CurrentUser, session: session_type, response: Response
    ) -> UserOut:
        if not (principal.has_permission("user:read") or principal.has_scope("user:read")):
            require_owner(principal, str(user_id))
        cached = await cache.get(cache_key(user_id), type=UserOut)
        response.headers["X-Cache"] = "hit" if cached is not None else "miss"
        if cached is not None:
            return cached  # type: ignore[no-any-return]  # Cache.get(type=...) returns Any
        user = UserOut.model_validate(await repository(session).get(user_id))
        await cache.set(cache_key(user_id), user, ttl=settings.user_cache_ttl)
        return user

    @app.get("/users", dependencies=[Depends(require_permissions("user:read"))])
    async def list_users(
        *,
        session: session_type,
        role: SafeStr | None = None,
        email: Annotated[SafeStr | None, Query(description="part of the e-mail address")] = None,
        sort: str = "created_at",
        page: int = Query(default=1, ge=1),
        size: int = Query(default=20, ge=1, le=100),
        cursor: str | None = None,
        paging: str = Query(default="offset", pattern="^(offset|cursor)$"),
    ) -> PaginatedResponse[UserOut] | CursorPage[UserOut]:
        filters: list[Filter] = []
        if role is not None:
            filters.append(Filter("role", "eq", role))
        if email is not None:
            filters.append(Filter("email", "icontains", email))
        users = repository(session)
        if paging == "cursor" or cursor is not None:
            return await users.paginate_keyset(
                UserOut, size=size, sort=sort, cursor=cursor, filters=filters
            )
        params = PageParams(page=page, size=size, sort=sort)
        return await users.paginate(params, UserOut, filters=filters)

    @app.patch("/users/{user_id}")
    async def update_user(
        user_id: uuid.UUID, body: UserPatch, principal: CurrentUser, session: session_type
    ) -> UserOut:
        require_owner(principal, str(user_id))
        if body.role is not None and not principal.has_role("admin"):
            raise PermissionDeniedError("Only an admin may change a role.")
        changes = body.model_dump(exclude_unset=True, exclude={"version"})
        user = await repository(session).update(user_id, changes, expected_version=body.version)
        await outbox.add(session, UserUpdated(data=user_data(user)))
        await cache.delete(cache_key(user_id))
        return UserOut.model_validate(user)

    @app.delete(
        "/users/{user_id}",
        status_code=status.HTTP_204_NO_CONTENT,
        dependencies=[Depends(require_roles("admin"))],
    )
    async def delete_user(user_id: uuid.UUID, session: session_type) -> Response:
        users = repository(session)
        user = await users.get(user_id)
        await users.delete(user_id)
        await outbox.add(session, UserDeleted(data=user_data(user)))
        await cache.delete(cache_key(user_id))
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    app.add_middleware(AuthMiddleware, tokens=tokens, public_paths=PUBLIC_PATHS)
    app.add_middleware(RequestLoggingMiddleware, service_name="user-service")
    app.add_middleware(ObservabilityMiddleware)
    app.state.tokens = tokens
    app.state.relay = relay
    app.state.events = events
    return app

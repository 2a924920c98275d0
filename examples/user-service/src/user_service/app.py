"""The user-service application: its routes, on a service wired by aegis-service's bootstrap().

``bootstrap()`` installs logging, metrics, tracing, error answers, authentication, health, the
JWKS route, the outbox relay and one lifespan; this module keeps the domain: accounts, sign-in,
the service account of policy-service and the user events.
"""

import uuid
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Response, status
from opentelemetry.trace import TracerProvider
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncSession
from user_events import UserCreated, UserDeleted, UserUpdated

from aegis.auth import (
    CurrentUser,
    InvalidCredentialsError,
    MemoryTokenStore,
    PasswordService,
    PermissionDeniedError,
    RolePolicy,
    ServiceAccount,
    ServiceAccounts,
    TokenStore,
    require_owner,
    require_permissions,
    require_roles,
)
from aegis.core.models import CursorPage, PageParams, PaginatedResponse, SafeStr
from aegis.core.utils.security import hash_password
from aegis.core.utils.validation import PasswordPolicy, require_strong_password
from aegis.db import Filter, session_dependency
from aegis.msg import Transport
from aegis.obs import instrument_engine
from aegis.service import bootstrap
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


def create_app(
    settings: Settings,
    *,
    transport: Transport | None = None,
    token_store: TokenStore | None = None,
    registry: CollectorRegistry | None = None,
    tracer_provider: TracerProvider | None = None,
) -> FastAPI:
    """Build the application.

    ``transport`` shares an event transport and ``token_store`` the revocations (the
    one-process demo); ``registry`` and
    ``tracer_provider`` replace the global Prometheus registry and OpenTelemetry provider.
    """
    app = FastAPI(title="user-service")
    # With Redis, bootstrap() builds a ReplicatedTokenStore from the settings (shared with
    # policy-service, prefix "users:"); without, revocations stay in this process.
    store = token_store
    if store is None and settings.auth.revocation_redis_url is None:
        store = MemoryTokenStore()
    service = bootstrap(
        app,
        settings,
        policy=ROLES,
        token_store=store,
        transport=transport,
        outbox=outbox,
        registry=registry,
        tracer_provider=tracer_provider,
    )
    db, cache, tokens = service.db, service.cache, service.tokens
    # The settings always name a database, a cache and auth: bootstrap() built all three.
    assert db is not None
    assert cache is not None
    assert tokens is not None
    # What it sends, through the outbox: the /asyncapi page (bootstrap() serves it) lists them.
    if service.asyncapi is not None and service.publisher is not None:
        service.asyncapi.publisher(service.publisher, UserCreated, UserUpdated, UserDeleted)
    instrument_engine(
        db.engine,
        name="users",
        registry=registry,
        tracer_provider=tracer_provider or service.tracer_provider,
    )
    passwords = PasswordService()
    accounts = ServiceAccounts(
        [
            ServiceAccount(
                name="policy-service",
                client_id=settings.policy_service_client_id,
                secret_hash=hash_password(settings.policy_service_secret.get_secret_value()),
                scopes=frozenset({"user:read"}),
                audiences=frozenset({settings.auth.audience}),
            )
        ],
        tokens,
    )
    app.router.routes.append(accounts.token_route())
    cursor_secret = settings.cursor_secret.get_secret_value().encode()

    @service.on_start
    async def create_admin() -> None:
        # The tables exist already: examples/schemas, created by aegis-schema's coordinator.
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

    session_type = Annotated[AsyncSession, Depends(session_dependency(db), scope="function")]
    # Routes that only read take a read-only session: on a read replica when the settings
    # name any (USERS_DATABASE__READ_REPLICA_URLS), after the replica has replayed what the
    # same client wrote (bootstrap() installs aegis-db's ReadYourWritesMiddleware).
    reading_type = Annotated[
        AsyncSession, Depends(session_dependency(db, read_only=True), scope="function")
    ]

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
    async def me(principal: CurrentUser, session: reading_type) -> UserOut:
        return UserOut.model_validate(await repository(session).get(uuid.UUID(principal.subject)))

    @app.get("/users/{user_id}")
    async def get_user(
        user_id: uuid.UUID, principal: CurrentUser, session: reading_type, response: Response
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
        session: reading_type,
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

    return app

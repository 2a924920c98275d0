"""The policy-service application: its routes, on a service wired by aegis-service's bootstrap().

``bootstrap()`` installs logging, metrics, tracing, error answers, token verification with
user-service's JWKS, health and one lifespan; this module keeps the domain: policies, the
projection of user events and the calls to user-service.
"""

import uuid
from http import HTTPStatus
from typing import Annotated

import httpx
from fastapi import Depends, FastAPI, Query, Response, status
from opentelemetry.trace import TracerProvider
from prometheus_client import CollectorRegistry
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession
from user_events import UserCreated, UserData, UserDeleted, UserUpdated

from aegis.auth import (
    CurrentUser,
    RolePolicy,
    ServiceTokenAuth,
    TokenStore,
    require_owner,
    require_permissions,
)
from aegis.core.errors import AegisError, register_error_code
from aegis.core.models import PageParams, PaginatedResponse, SafeStr
from aegis.db import Filter, session_dependency
from aegis.log import get_logger
from aegis.msg import (
    EventRegistry,
    EventSubscriber,
    InMemoryTransport,
    SqlIdempotencyStore,
    Transport,
    idempotent,
)
from aegis.obs import instrument_engine
from aegis.service import bootstrap
from policy_service.models import (
    KnownUser,
    KnownUserRepository,
    Policy,
    PolicyIn,
    PolicyOut,
    PolicyPatch,
    PolicyRepository,
)
from policy_service.settings import Settings

log = get_logger("policy_service")

register_error_code("POLICY_HOLDER_UNKNOWN", 422, "Unknown policy holder")
register_error_code("POLICY_HOLDER_DELETED", 409, "Policy holder deleted")

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
"""The same roles as user-service (whose tokens carry role names, not permissions)."""


class HolderUnknownError(AegisError):
    """The policy holder is not a user of user-service (422 ``POLICY_HOLDER_UNKNOWN``)."""

    default_code = "POLICY_HOLDER_UNKNOWN"


class HolderDeletedError(AegisError):
    """The policy holder's account was deleted (409 ``POLICY_HOLDER_DELETED``)."""

    default_code = "POLICY_HOLDER_DELETED"


def create_app(
    settings: Settings,
    *,
    transport: Transport | None = None,
    token_store: TokenStore | None = None,
    registry: CollectorRegistry | None = None,
    tracer_provider: TracerProvider | None = None,
) -> FastAPI:
    """Build the application.

    ``transport`` shares an event transport (the one-process demo; without one and without
    Kafka settings, an in-memory transport that only this process publishes to);
    ``token_store`` shares user-service's revocations in one process (else they come from
    ``POLICIES_REDIS_URL``, or there are none);
    ``registry`` and ``tracer_provider`` replace the global Prometheus registry and
    OpenTelemetry provider.
    """
    app = FastAPI(title="policy-service")
    if transport is None and settings.kafka is None:
        transport = InMemoryTransport()
    service = bootstrap(
        app,
        settings,
        policy=ROLES,
        token_store=token_store,
        transport=transport,
        registry=registry,
        tracer_provider=tracer_provider,
    )
    db, events = service.db, service.transport
    assert db is not None  # the settings always name a database
    assert events is not None  # given, made above or from the Kafka settings
    instrument_engine(
        db.engine,
        name="policies",
        registry=registry,
        tracer_provider=tracer_provider or service.tracer_provider,
    )
    plain = httpx.AsyncClient(timeout=5.0)  # the token requests of the service account
    service_auth = ServiceTokenAuth.client_credentials(
        f"{settings.users_url}/oauth/token",
        settings.client_id,
        settings.client_secret,
        audience=settings.auth.audience,
        scopes=["user:read"],
        client=plain,
    )
    users_client = httpx.AsyncClient(base_url=settings.users_url, auth=service_auth, timeout=5.0)
    processed = SqlIdempotencyStore(db.engine)
    subscriber = EventSubscriber(
        events, group_id=settings.consumer_group, registry=EventRegistry(), poll_timeout=0.05
    )
    if service.asyncapi is not None:  # its handlers, registered below, are on /asyncapi
        service.asyncapi.subscriber(subscriber)
    # Not ready while the subscriber cannot consume (broker or group gone) for over max_outage.
    service.health.add("events", subscriber.health_check)
    service.on_start(subscriber.start)
    # on_stop hooks run in reverse: the subscriber stops first, then the HTTP clients close.
    service.on_stop(plain.aclose)
    service.on_stop(users_client.aclose)
    service.on_stop(subscriber.stop)
    cursor_secret = settings.cursor_secret.get_secret_value().encode()

    async def remember(data: UserData, *, deleted: bool = False) -> None:
        """Upsert the projection; an older version never overwrites a newer one."""
        async with db.transaction(propagation="requires_new") as session:
            users = KnownUserRepository(session)
            known = await users.get_or_none(uuid.UUID(data.user_id))
            if known is not None and (known.deleted or known.user_version > data.version):
                return
            await users.upsert(
                {
                    "id": uuid.UUID(data.user_id),
                    "email": data.email,
                    "name": data.name,
                    "role": data.role,
                    "user_version": data.version,
                    "deleted": deleted,
                },
                conflict_on=["id"],
            )
            if deleted:  # the holder is gone: their live policies are cancelled
                await session.execute(
                    update(Policy)
                    .where(Policy.holder_id == uuid.UUID(data.user_id))
                    .where(Policy.status.in_(["draft", "active"]))
                    .values(status="cancelled", version=Policy.version + 1)
                )

    @subscriber.on(UserCreated)
    @idempotent(processed, name="users.created")
    async def on_created(event: UserCreated) -> None:
        await remember(event.data)

    @subscriber.on(UserUpdated)
    @idempotent(processed, name="users.updated")
    async def on_updated(event: UserUpdated) -> None:
        await remember(event.data)

    @subscriber.on(UserDeleted)
    @idempotent(processed, name="users.deleted")
    async def on_deleted(event: UserDeleted) -> None:
        await remember(event.data, deleted=True)
        log.info("user deleted: policies cancelled", holder_id=event.data.user_id)

    async def holder(holder_id: uuid.UUID) -> KnownUser:
        """The holder from the projection, else fetched from user-service (and remembered).

        Its own short transactions: the request's transaction then starts with its write, so
        on SQLite an event handled meanwhile cannot turn it into a stale snapshot.
        """
        known = await projected(holder_id)
        if known is None:
            response = await users_client.get(f"/users/{holder_id}")
            if response.status_code == HTTPStatus.NOT_FOUND:
                raise HolderUnknownError(
                    f"User {holder_id} does not exist.", details={"holder_id": str(holder_id)}
                )
            response.raise_for_status()
            body = response.json()
            await remember(
                UserData(
                    user_id=body["id"],
                    email=body["email"],
                    name=body["name"],
                    role=body["role"],
                    version=body["version"],
                )
            )
            known = await projected(holder_id)
        if known is None or known.deleted:
            raise HolderDeletedError(
                f"User {holder_id} was deleted; no new policies.",
                details={"holder_id": str(holder_id)},
            )
        return known

    async def projected(holder_id: uuid.UUID) -> KnownUser | None:
        async with db.transaction(propagation="requires_new") as session:
            return await KnownUserRepository(session).get_or_none(holder_id)

    session_type = Annotated[AsyncSession, Depends(session_dependency(db), scope="function")]
    # Reading routes: on a read replica when the settings name any, read-your-writes per client.
    reading_type = Annotated[
        AsyncSession, Depends(session_dependency(db, read_only=True), scope="function")
    ]
    write = [Depends(require_permissions("policy:write"))]
    read = [Depends(require_permissions("policy:read"))]

    def repository(session: AsyncSession) -> PolicyRepository:
        return PolicyRepository(session, cursor_secret=cursor_secret)

    async def owned(session: AsyncSession, policy_id: uuid.UUID, principal: CurrentUser) -> Policy:
        policy = await repository(session).get(policy_id)
        require_owner(principal, str(policy.holder_id))
        return policy

    @app.post("/policies", status_code=status.HTTP_201_CREATED, dependencies=write)
    async def create_policy(
        body: PolicyIn, principal: CurrentUser, session: session_type
    ) -> PolicyOut:
        holder_id = body.holder_id or uuid.UUID(principal.subject)
        require_owner(principal, str(holder_id))
        await holder(holder_id)
        values = body.model_dump()
        values["holder_id"] = holder_id
        return PolicyOut.model_validate(await repository(session).create(values))

    @app.get("/policies/{policy_id}", dependencies=read)
    async def get_policy(
        policy_id: uuid.UUID, principal: CurrentUser, session: reading_type
    ) -> PolicyOut:
        return PolicyOut.model_validate(await owned(session, policy_id, principal))

    @app.get("/policies", dependencies=read)
    async def list_policies(
        *,
        principal: CurrentUser,
        session: reading_type,
        status: SafeStr | None = None,
        holder_id: uuid.UUID | None = None,
        sort: str = "-created_at",
        page: int = Query(default=1, ge=1),
        size: int = Query(default=20, ge=1, le=100),
    ) -> PaginatedResponse[PolicyOut]:
        filters: list[Filter] = []
        if status is not None:
            filters.append(Filter("status", "eq", status))
        if not principal.has_role("admin"):  # everyone else sees their own policies only
            holder_id = uuid.UUID(principal.subject)
        if holder_id is not None:
            filters.append(Filter("holder_id", "eq", holder_id))
        params = PageParams(page=page, size=size, sort=sort)
        return await repository(session).paginate(params, PolicyOut, filters=filters)

    @app.patch("/policies/{policy_id}", dependencies=write)
    async def update_policy(
        policy_id: uuid.UUID, body: PolicyPatch, principal: CurrentUser, session: session_type
    ) -> PolicyOut:
        await owned(session, policy_id, principal)
        changes = body.model_dump(exclude_unset=True, exclude={"version"})
        policy = await repository(session).update(policy_id, changes, expected_version=body.version)
        return PolicyOut.model_validate(policy)

    @app.delete("/policies/{policy_id}", status_code=status.HTTP_204_NO_CONTENT, dependencies=write)
    async def delete_policy(
        policy_id: uuid.UUID, principal: CurrentUser, session: session_type
    ) -> Response:
        await owned(session, policy_id, principal)
        await repository(session).delete(policy_id)
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    return app

"""Fixtures for aegis-auth's tests: keys, token services, stores and real FastAPI/Starlette apps."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Annotated, Any, Literal

import httpx
import pytest
from fastapi import Depends, FastAPI
from jwt import PyJWS
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from aegis.auth import (
    JWKS_PATH,
    AuthMiddleware,
    CurrentUser,
    JWTKey,
    KeySet,
    MemoryTokenStore,
    Principal,
    RedisTokenStore,
    RoleDefinition,
    RolePolicy,
    TokenService,
    TokenStore,
    current_principal,
    jwks_route,
    permissions_required,
    require_permissions,
    require_roles,
    require_scopes,
    roles_required,
    scopes_required,
)
from aegis.auth._jws import fast_path_available
from aegis.core import context
from aegis.core.web import install_error_handlers

ISSUER = "https://users.example"
AUDIENCE = "users-api"
HS_SECRET = b"s" * 64
AppKind = Literal["fastapi", "starlette"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def rsa_key() -> JWTKey:
    """One RSA key per session: generating 3072-bit keys takes a while."""
    return JWTKey.generate("rsa-1", "RS256")


@pytest.fixture
def keys(rsa_key: JWTKey) -> KeySet:
    """A key set with an HMAC, an RSA, an EC and an Ed25519 key; the Ed25519 one signs."""
    return KeySet(
        [
            JWTKey.hmac("hs-1", HS_SECRET),
            rsa_key,
            JWTKey.generate("es-1", "ES256"),
            JWTKey.generate("ed-1", "EdDSA"),
        ]
    )


@pytest.fixture
def policy() -> RolePolicy:
    return RolePolicy(
        [
            RoleDefinition("admin", inherits=("manager",), permissions=("*:*",)),
            RoleDefinition("manager", inherits=("user",), permissions=("policy:*",)),
            RoleDefinition("user", permissions=("*:read",)),
        ]
    )


@pytest.fixture
def store() -> MemoryTokenStore:
    return MemoryTokenStore()


@pytest.fixture
async def redis_store(redis_url: str, redis_prefix: str) -> AsyncIterator[RedisTokenStore]:
    client = Redis.from_url(redis_url)
    yield RedisTokenStore(client, prefix=redis_prefix)
    await client.aclose()


@pytest.fixture(params=["memory", "redis"])
def any_store(request: pytest.FixtureRequest) -> TokenStore:
    """Each test that takes it runs with the in-memory and the Redis store."""
    fixture = "store" if request.param == "memory" else "redis_store"
    value: TokenStore = request.getfixturevalue(fixture)
    return value


@pytest.fixture
def tokens(keys: KeySet, store: MemoryTokenStore, policy: RolePolicy) -> TokenService:
    return TokenService(keys, issuer=ISSUER, audience=AUDIENCE, store=store, policy=policy)


@pytest.fixture
def hs_secret() -> bytes:
    """The secret of the key ``hs-1``, for tests that sign tokens by hand."""
    return HS_SECRET


def _me(principal: Principal) -> dict[str, Any]:
    return {
        "subject": principal.subject,
        "roles": sorted(principal.roles),
        "scopes": sorted(principal.scopes),
        "tenant": principal.tenant,
        "is_service": principal.is_service,
        "context_user_id": context.user_id.get(),
        "context_tenant_id": context.tenant_id.get(),
        "same_as_context": current_principal() is principal,
    }


def fastapi_app(tokens: TokenService, **options: Any) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/me")
    async def me(user: CurrentUser) -> dict[str, Any]:
        return _me(user)

    @app.get("/admin")
    async def admin(user: Annotated[Principal, Depends(require_roles("admin"))]) -> dict[str, str]:
        return {"ok": user.subject}

    @app.get("/policies", dependencies=[Depends(require_permissions("policy:read"))])
    async def policies() -> dict[str, str]:
        return {"ok": "policies"}

    @app.get("/reports", dependencies=[Depends(require_scopes("reports:read"))])
    async def reports() -> dict[str, str]:
        return {"ok": "reports"}

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "pass"}

    app.router.routes.append(jwks_route(tokens.keys))
    app.add_middleware(
        AuthMiddleware, tokens=tokens, public_paths=["/health", JWKS_PATH], **options
    )
    return app


def starlette_app(tokens: TokenService, **options: Any) -> Starlette:
    async def me(request: Request) -> Response:
        return JSONResponse(_me(request.user))

    @roles_required("admin")
    async def admin(request: Request) -> Response:
        return JSONResponse({"ok": request.user.subject})

    @permissions_required("policy:read")
    async def policies(request: Request) -> Response:
        return JSONResponse({"ok": "policies"})

    @scopes_required("reports:read")
    def reports(request: Request) -> Response:  # a sync endpoint, run in a worker thread
        return JSONResponse({"ok": "reports"})

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "pass"})

    app = Starlette(
        routes=[
            Route("/me", me),
            Route("/admin", admin),
            Route("/policies", policies),
            Route("/reports", reports),
            Route("/health", health),
            jwks_route(tokens.keys),
        ],
        middleware=[
            Middleware(
                AuthMiddleware, tokens=tokens, public_paths=["/health", JWKS_PATH], **options
            )
        ],
    )
    install_error_handlers(app)
    return app


AppFactory = Callable[..., ASGIApp]


@pytest.fixture(params=["fastapi", "starlette"])
def app_factory(request: pytest.FixtureRequest) -> AppFactory:
    """Each test that takes it runs against a real FastAPI app and a real Starlette app."""
    return fastapi_app if request.param == "fastapi" else starlette_app


@pytest.fixture
def app(app_factory: AppFactory, tokens: TokenService) -> ASGIApp:
    return app_factory(tokens)


@pytest.fixture
async def client(app: ASGIApp) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://users") as http:
        yield http


@pytest.fixture
def pyjwt_public_path() -> Iterator[None]:
    """PyJWT as a release that renamed a parameter of the hook aegis.auth uses would be.

    The guard runs again, so the token services built during the test verify through PyJWT's
    public API; it runs again afterwards too, so later tests get the fast path back.
    """
    original = PyJWS._verify_signature

    def _verify_signature(  # noqa: PLR0917 - PyJWT's signature, with "signature" renamed
        self: PyJWS,
        signing_input: bytes,
        header: dict[str, Any],
        sig: bytes,
        key: Any = "",
        algorithms: Any = None,
        options: Any = None,
    ) -> None:
        original(self, signing_input, header, sig, key, algorithms, options)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(PyJWS, "_verify_signature", _verify_signature)
        fast_path_available.cache_clear()
        yield
    fast_path_available.cache_clear()


@pytest.fixture(params=["fast", "public-api"])
def jwt_path(request: pytest.FixtureRequest) -> str:
    """Run a test with tokens verified through PyJWT's hooks and through its public API."""
    if request.param == "public-api":
        request.getfixturevalue("pyjwt_public_path")
    path: str = request.param
    return path


@pytest.fixture
def caplog_auth(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level("DEBUG", logger="aegis.auth")
    return caplog

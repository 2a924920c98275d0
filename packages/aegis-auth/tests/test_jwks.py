"""JWKS across two apps: users publishes its keys, policies verifies users' tokens with them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from aegis.auth import (
    JWKS_PATH,
    AuthMiddleware,
    CurrentUser,
    JWKSClient,
    JWTKey,
    KeySet,
    TokenService,
    jwks_route,
)
from aegis.core.errors import ConfigurationError, ExternalServiceError
from aegis.core.web import install_error_handlers

# Every test twice: tokens verified through PyJWT's hooks and through its public API.
pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("jwt_path")]


class Origin:
    """The users service: issues tokens and publishes its JWKS; can be taken down."""

    def __init__(self) -> None:
        self.keys = KeySet([JWTKey.generate("users-2026-01", "ES256")])
        self.tokens = TokenService(self.keys, issuer="users", audience="policies")
        self.down = False
        jwks = jwks_route(self.keys)

        async def serve_jwks(request: Request) -> Response:
            if self.down:
                return Response(status_code=503)
            return await jwks.endpoint(request)  # type: ignore[no-any-return]

        self.app = Starlette(
            routes=[Route(JWKS_PATH, serve_jwks)],
            middleware=[Middleware(AuthMiddleware, tokens=self.tokens, public_paths=[JWKS_PATH])],
        )


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def origin() -> Origin:
    return Origin()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def jwks_client(origin: Origin, clock: Clock) -> AsyncIterator[JWKSClient]:
    transport = httpx.ASGITransport(app=origin.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://users") as http:
        yield JWKSClient(f"http://users{JWKS_PATH}", client=http, clock=clock)


@pytest.fixture
async def policies(jwks_client: JWKSClient) -> AsyncIterator[httpx.AsyncClient]:
    verifier = TokenService(KeySet(), issuer="users", audience="policies", jwks=jwks_client)
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/policies")
    async def list_policies(user: CurrentUser) -> dict[str, Any]:
        return {"caller": user.subject}

    app.add_middleware(AuthMiddleware, tokens=verifier)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://policies") as http:
        yield http


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_jwks_route_publishes_public_keys_only(origin: Origin) -> None:
    origin.keys.add(JWTKey.hmac("shared", b"x" * 64))
    transport = httpx.ASGITransport(app=origin.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://users") as http:
        response = await http.get(JWKS_PATH)
    assert response.headers["cache-control"] == "public, max-age=300"
    (key,) = response.json()["keys"]
    assert key["kid"] == "users-2026-01"
    assert (key["kty"], key["crv"], key["alg"], key["use"]) == ("EC", "P-256", "ES256", "sig")
    assert "d" not in key


async def test_service_verifies_another_services_tokens_through_its_jwks(
    origin: Origin, policies: httpx.AsyncClient, jwks_client: JWKSClient
) -> None:
    token = origin.tokens.issue_access_token("kim")
    for _ in range(3):
        response = await policies.get("/policies", headers=bearer(token))
        assert response.json() == {"caller": "kim"}
    assert jwks_client.fetches == 1


async def test_rotated_key_is_fetched_on_first_sight(
    origin: Origin, policies: httpx.AsyncClient, jwks_client: JWKSClient, clock: Clock
) -> None:
    await policies.get("/policies", headers=bearer(origin.tokens.issue_access_token("kim")))
    origin.keys.add(JWTKey.generate("users-2026-02", "EdDSA"), sign=True)
    clock.now += 31  # past min_refresh_interval
    response = await policies.get(
        "/policies", headers=bearer(origin.tokens.issue_access_token("kim"))
    )
    assert response.status_code == 200
    assert jwks_client.fetches == 2


async def test_unknown_kids_cannot_make_it_hammer_the_origin(
    origin: Origin, policies: httpx.AsyncClient, jwks_client: JWKSClient
) -> None:
    await policies.get("/policies", headers=bearer(origin.tokens.issue_access_token("kim")))
    for number in range(20):
        forger = TokenService(
            KeySet([JWTKey.generate(f"made-up-{number}")]), issuer="users", audience="policies"
        )
        response = await policies.get("/policies", headers=bearer(forger.issue_access_token("kim")))
        assert (response.status_code, response.json()["reason"]) == (401, "unknown_key")
    assert jwks_client.fetches == 1


async def test_retired_key_stops_verifying_after_the_cache_ttl(
    origin: Origin, policies: httpx.AsyncClient, clock: Clock
) -> None:
    old_token = origin.tokens.issue_access_token("kim")
    assert (await policies.get("/policies", headers=bearer(old_token))).status_code == 200
    origin.keys.add(JWTKey.generate("users-2026-02"), sign=True)
    origin.keys.retire("users-2026-01")
    assert (await policies.get("/policies", headers=bearer(old_token))).status_code == 200
    clock.now += 301
    response = await policies.get("/policies", headers=bearer(old_token))
    assert (response.status_code, response.json()["reason"]) == (401, "unknown_key")


async def test_known_keys_keep_working_while_the_origin_is_down(
    origin: Origin, policies: httpx.AsyncClient, jwks_client: JWKSClient, clock: Clock
) -> None:
    token = origin.tokens.issue_access_token("kim")
    assert (await policies.get("/policies", headers=bearer(token))).status_code == 200
    origin.down = True
    clock.now += 301
    assert (await policies.get("/policies", headers=bearer(token))).status_code == 200
    origin.keys.add(JWTKey.generate("users-2026-02"), sign=True)
    clock.now += 31
    response = await policies.get(
        "/policies", headers=bearer(origin.tokens.issue_access_token("kim"))
    )
    assert (response.status_code, response.json()["code"]) == (502, "EXTERNAL_SERVICE_ERROR")
    origin.down = False
    clock.now += 31
    response = await policies.get(
        "/policies", headers=bearer(origin.tokens.issue_access_token("kim"))
    )
    assert response.status_code == 200
    assert jwks_client.fetches == 4


async def test_origin_down_from_the_start_is_a_502(
    origin: Origin, policies: httpx.AsyncClient
) -> None:
    origin.down = True
    response = await policies.get(
        "/policies", headers=bearer(origin.tokens.issue_access_token("kim"))
    )
    assert (response.status_code, response.json()["code"]) == (502, "EXTERNAL_SERVICE_ERROR")


async def test_unusable_jwks_entries_are_skipped() -> None:
    document = {
        "keys": [
            {"kty": "oct", "kid": "secret", "k": "c2VjcmV0"},
            {"kty": "EC", "kid": "enc", "use": "enc", "crv": "P-256", "x": "a", "y": "b"},
            {"kty": "EC", "kid": "broken", "crv": "P-256", "x": "a", "y": "b"},
            {"kty": "RSA", "kid": "../x", "n": "a", "e": "AQAB"},
            "not a key",
            JWTKey.generate("good", "EdDSA").public_jwk(),
        ]
    }

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=document)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        client = JWKSClient("http://users/jwks", client=http)
        assert await client.get_key("good") is not None
        assert await client.get_key("secret") is None
        await client.aclose()  # not its client: left open


async def test_jwks_client_makes_and_closes_its_own_http_client() -> None:
    client = JWKSClient("http://127.0.0.1:9/jwks", timeout=0.5)
    await client.aclose()


def test_from_jwk_rules() -> None:
    with pytest.raises(ConfigurationError, match="kid"):
        JWTKey.from_jwk({"kty": "EC"})
    with pytest.raises(ConfigurationError, match="only public"):
        JWTKey.from_jwk({"kty": "oct", "kid": "k", "k": "abc"})
    with pytest.raises(ConfigurationError, match="not accepted"):
        JWTKey.from_jwk({"kty": "OKP", "kid": "k", "crv": "X25519", "x": "abc"})
    rsa_jwk = {"kty": "RSA", "kid": "r", "n": "sXch", "e": "AQAB"}
    with pytest.raises(ConfigurationError, match=r"not a valid RS256 key|below"):
        JWTKey.from_jwk(rsa_jwk)  # no alg: RS256 is implied
    ec = JWTKey.generate("e", "ES384").public_jwk()
    del ec["alg"]
    assert JWTKey.from_jwk(ec).algorithm == "ES384"


async def test_concurrent_lookups_share_one_fetch(origin: Origin, jwks_client: JWKSClient) -> None:
    import asyncio

    keys = await asyncio.gather(*(jwks_client.get_key("users-2026-01") for _ in range(5)))
    assert all(key is not None for key in keys)
    assert jwks_client.fetches == 1


async def test_oversized_jwks_is_refused() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b'{"keys": []}' + b" " * 300_000)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        with pytest.raises(ExternalServiceError):
            await JWKSClient("http://users/jwks", client=http).get_key("k")

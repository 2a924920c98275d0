"""aegis_auth_* metrics, scraped in the Prometheus text format after real operations."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from aegis.auth import (
    JWKS_PATH,
    AuthMiddleware,
    JWKSClient,
    JWTKey,
    KeySet,
    MemoryTokenStore,
    PasswordService,
    TokenRevokedError,
    TokenService,
    jwks_route,
)
from aegis.auth._metrics import AuthMetrics
from aegis.core.errors import ExternalServiceError
from aegis.core.utils.security import PasswordHasher

pytestmark = pytest.mark.anyio

Scrape = Callable[..., float]


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def scrape(registry: CollectorRegistry) -> Scrape:
    """Read one sample from the registry's text exposition, as a Prometheus server would."""

    def value(name: str, **labels: str) -> float:
        text = generate_latest(registry).decode()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and sample.labels == labels:
                    return float(sample.value)
        return 0.0

    return value


async def hello(request: Request) -> Response:
    return PlainTextResponse(f"hello {request.user.display_name}")


def app(tokens: TokenService) -> httpx.AsyncClient:
    starlette = Starlette(
        routes=[Route("/hello", hello)], middleware=[Middleware(AuthMiddleware, tokens=tokens)]
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(starlette), base_url="http://api")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_requests_count_verifications_by_result_and_source(
    registry: CollectorRegistry, scrape: Scrape
) -> None:
    now = [time.time()]
    tokens = TokenService(
        KeySet([JWTKey.generate("k1")]),
        issuer="iss",
        audience="aud",
        clock=lambda: now[0],
        metrics_registry=registry,
    )
    token = tokens.issue_access_token("u", expires_in=timedelta(minutes=5))
    stranger = TokenService(KeySet([JWTKey.generate("k1")]), issuer="iss", audience="aud")
    async with app(tokens) as http:
        assert (await http.get("/hello", headers=bearer(token))).status_code == 200
        assert (await http.get("/hello", headers=bearer(token))).status_code == 200
        assert (await http.get("/hello", headers=bearer(token))).status_code == 200
        forged = stranger.issue_access_token("admin")
        assert (await http.get("/hello", headers=bearer(forged))).status_code == 401
        assert (await http.get("/hello", headers=bearer("not-a-jwt"))).status_code == 401
        now[0] += 3600
        assert (await http.get("/hello", headers=bearer(token))).status_code == 401
    verifications = "aegis_auth_token_verifications_total"
    assert scrape(verifications, result="valid", source="full") == 1
    assert scrape(verifications, result="valid", source="cache") == 2
    assert scrape(verifications, result="signature", source="full") == 1
    assert scrape(verifications, result="malformed", source="full") == 1
    assert scrape(verifications, result="expired", source="cache") == 1
    assert scrape("aegis_auth_tokens_issued_total", type="access") == 1


async def test_refresh_reuse_and_revocations_are_counted(
    registry: CollectorRegistry, scrape: Scrape
) -> None:
    tokens = TokenService(
        KeySet([JWTKey.generate("k1")]),
        issuer="iss",
        audience="aud",
        store=MemoryTokenStore(),
        metrics_registry=registry,
    )
    pair = tokens.issue_pair("u", roles=["user"])
    renewed = await tokens.refresh(pair.refresh_token)
    with pytest.raises(TokenRevokedError):
        await tokens.refresh(pair.refresh_token)  # reuse: the family is revoked
    with pytest.raises(TokenRevokedError):
        await tokens.verify(renewed.access_token)
    other = tokens.issue_access_token("v")
    await tokens.revoke(other)
    assert scrape("aegis_auth_tokens_issued_total", type="access") == 3
    assert scrape("aegis_auth_tokens_issued_total", type="refresh") == 2
    assert scrape("aegis_auth_refresh_reuse_total") == 1
    assert scrape("aegis_auth_revocations_total", scope="family") == 1
    assert scrape("aegis_auth_revocations_total", scope="token") == 1
    verifications = "aegis_auth_token_verifications_total"
    assert scrape(verifications, result="revoked", source="full") == 1
    assert scrape(verifications, result="valid", source="full") == 2  # refresh and revoke
    assert scrape(verifications, result="valid", source="cache") == 1  # the reused token


async def test_password_checks_are_counted_by_result(
    registry: CollectorRegistry, scrape: Scrape
) -> None:
    weak = await PasswordService(PasswordHasher(memory_cost=1024, time_cost=1)).hash("pw")
    passwords = PasswordService(
        PasswordHasher(memory_cost=1024, time_cost=2), metrics_registry=registry
    )
    stored = await passwords.hash("pw")
    assert (await passwords.verify("pw", stored)).valid
    assert not (await passwords.verify("wrong", stored)).valid
    assert not (await passwords.verify("x" * 2000, stored)).valid
    assert not (await passwords.verify("pw", None)).valid
    assert not (
        await passwords.verify("pw", "$argon2id$v=19$m=99999999,t=1,p=1$c2FsdA$aGFzaA")
    ).valid
    assert (await passwords.verify("pw", weak)).new_hash is not None
    checks = "aegis_auth_password_checks_total"
    assert scrape(checks, result="valid") == 2
    assert scrape(checks, result="invalid") == 2
    assert scrape(checks, result="unknown_user") == 1
    assert scrape(checks, result="bad_hash") == 1
    assert scrape("aegis_auth_password_rehashes_total") == 1


async def test_jwks_fetches_are_counted(registry: CollectorRegistry, scrape: Scrape) -> None:
    keys = KeySet([JWTKey.generate("users-1", "ES256")])
    origin = TokenService(keys, issuer="users", audience="policies")
    down = [False]
    publish = jwks_route(keys)

    async def serve(request: Request) -> Response:
        if down[0]:
            return Response(status_code=503)
        return await publish.endpoint(request)  # type: ignore[no-any-return]

    transport = httpx.ASGITransport(Starlette(routes=[Route(JWKS_PATH, serve)]))
    async with httpx.AsyncClient(transport=transport, base_url="http://users") as http:
        jwks = JWKSClient(
            f"http://users{JWKS_PATH}",
            client=http,
            min_refresh_interval=timedelta(0),
            metrics_registry=registry,
        )
        verifier = TokenService(
            KeySet(), issuer="users", audience="policies", jwks=jwks, metrics_registry=registry
        )
        await verifier.verify(origin.issue_access_token("u"))
        down[0] = True
        keys.add(JWTKey.generate("users-2", "ES256"), sign=True)
        with pytest.raises(ExternalServiceError):
            await verifier.verify(origin.issue_access_token("u"))
    assert scrape("aegis_auth_jwks_fetches_total", result="ok") == 1
    assert scrape("aegis_auth_jwks_fetches_total", result="error") == 1


def test_each_registry_gets_one_set_of_metrics(registry: CollectorRegistry) -> None:
    assert AuthMetrics.for_registry(registry) is AuthMetrics.for_registry(registry)
    assert AuthMetrics.for_registry(registry) is not AuthMetrics.for_registry(CollectorRegistry())
    assert AuthMetrics.for_registry() is AuthMetrics.for_registry(None)

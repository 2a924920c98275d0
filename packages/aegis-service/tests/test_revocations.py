"""AuthSettings.revocation_*: a ReplicatedTokenStore on the shared Redis, started and stopped with
the app, honoured by the middleware, and a revocations readiness check that follows it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
import pytest
from prometheus_client import CollectorRegistry
from pydantic import SecretStr
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from aegis.auth import RedisTokenStore, ReplicatedTokenStore
from aegis.core.errors import ConfigurationError
from aegis.service import AuthSettings, ServiceSettings, bootstrap
from aegis.service._redis import redis_client
from aegis.testing import TcpProxy, unique_name

pytestmark = pytest.mark.anyio
DEADLINE = 5.0  # seconds a revocation may take to arrive before the test fails (it takes ms)


async def eventually(condition: Callable[[], Any], timeout: float = DEADLINE) -> None:
    """Return once ``await condition()`` is true; fail after ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while not await condition():
            await asyncio.sleep(0.005)


async def hello(request: Request) -> Response:
    return PlainTextResponse("hello")


def check_status(health: httpx.Response, name: str = "revocations") -> str:
    """The status of one check in a /health or /health/ready answer (``pass``/``fail``)."""
    checks = health.json()["checks"]
    found = [
        entries[0]["status"] for key, entries in checks.items() if key.partition(":")[0] == name
    ]
    return str(found[0]) if found else "absent"


def settings(
    redis_url: str | None, prefix: str, when_stale: Literal["closed", "open"] = "closed"
) -> ServiceSettings:
    auth = AuthSettings(
        issuer="users",
        audience="aegis",
        revocation_redis_url=SecretStr(redis_url) if redis_url else None,
        revocation_prefix=prefix,
        revocation_max_staleness_seconds=0.5,
        revocation_when_stale=when_stale,
    )
    return ServiceSettings(name="revocations", log=None, auth=auth, health_interval_seconds=0)


@asynccontextmanager
async def serving(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan running, and a client for it."""
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://svc") as http,
    ):
        yield http


async def subscribers(redis_url: str, channel: str) -> int:
    client = Redis.from_url(redis_url)
    try:
        counts = await client.pubsub_numsub(channel)
    finally:
        await client.aclose()
    return int(counts[0][1])


@pytest.fixture
def outage(redis_url: str) -> Iterator[tuple[TcpProxy, str]]:
    """A path to the shared Redis that a test can cut, and the URL through it."""
    address = urlsplit(redis_url)
    with TcpProxy(address.hostname or "127.0.0.1", address.port or 6379) as proxy:
        yield proxy, redis_url.replace(address.netloc, proxy.address)


async def test_a_revocation_made_by_another_service_is_refused_here(
    redis_url: str, redis_prefix: str
) -> None:
    app = Starlette(routes=[Route("/hello", hello)])
    service = bootstrap(app, settings(redis_url, redis_prefix), registry=CollectorRegistry())
    assert isinstance(service.revocations, ReplicatedTokenStore)
    assert service.tokens is not None
    assert service.tokens.store is service.revocations
    channel = f"{redis_prefix}revocations"
    writer_client = Redis.from_url(redis_url)
    writer = RedisTokenStore(writer_client, prefix=redis_prefix)  # the issuing service's store
    pair = service.tokens.issue_pair("kim", roles=["user"])
    auth = {"Authorization": f"Bearer {pair.access_token}"}
    try:
        async with serving(app) as http:
            assert await subscribers(redis_url, channel) == 1
            assert (await http.get("/hello", headers=auth)).status_code == 200
            ready = await http.get("/health/ready")
            assert ready.status_code == 200
            assert check_status(ready) == "pass"
            principal = await service.tokens.verify(pair.access_token)
            assert principal.family is not None
            await writer.revoke_family(principal.family, expires_at=principal.expires_at or 0)

            async def refused() -> bool:
                answer = await http.get("/hello", headers=auth)
                return answer.status_code == 401 and answer.json()["code"] == "AUTH_TOKEN_REVOKED"

            await eventually(refused)
        assert await subscribers(redis_url, channel) == 0  # stopped with the app
    finally:
        await writer_client.aclose()


@pytest.mark.parametrize(("when_stale", "ready_status"), [("closed", 503), ("open", 200)])
async def test_readiness_follows_the_replica_critical_only_when_failing_closed(
    outage: tuple[TcpProxy, str],
    redis_prefix: str,
    when_stale: Literal["closed", "open"],
    ready_status: int,
) -> None:
    proxy, url = outage
    app = Starlette(routes=[Route("/hello", hello)])
    service = bootstrap(app, settings(url, redis_prefix, when_stale), registry=CollectorRegistry())
    assert service.tokens is not None
    auth = {"Authorization": f"Bearer {service.tokens.issue_access_token('kim')}"}
    async with serving(app) as http:
        assert (await http.get("/health/ready")).status_code == 200
        proxy.cut()

        async def stale() -> bool:
            return check_status(await http.get("/health")) == "fail"

        await eventually(stale)
        assert (await http.get("/health/ready")).status_code == ready_status
        hello_status = (await http.get("/hello", headers=auth)).status_code
        assert hello_status == (503 if when_stale == "closed" else 200)
        proxy.restore()

        async def ready_again() -> bool:
            health = await http.get("/health")
            return health.status_code == 200 and check_status(health) == "pass"

        await eventually(ready_again)


async def test_a_replicated_store_given_to_bootstrap_is_started_checked_and_stopped(
    redis_url: str, redis_prefix: str
) -> None:
    client = Redis.from_url(redis_url)
    store = ReplicatedTokenStore(client, prefix=redis_prefix, metrics_registry=CollectorRegistry())
    app = Starlette()
    service = bootstrap(app, settings(None, redis_prefix), token_store=store)
    assert service.revocations is store
    try:
        async with serving(app) as http:
            assert check_status(await http.get("/health/ready")) == "pass"
            assert await subscribers(redis_url, store.redis.channel) == 1
        assert await subscribers(redis_url, store.redis.channel) == 0
        assert await client.ping()  # the caller's client: still open
    finally:
        await client.aclose()


def test_a_token_store_and_revocation_settings_together_are_refused(
    redis_url: str, redis_prefix: str
) -> None:
    client = Redis.from_url(redis_url)
    store = RedisTokenStore(client, prefix=redis_prefix)
    with pytest.raises(ConfigurationError, match="not both"):
        bootstrap(Starlette(), settings(redis_url, redis_prefix), token_store=store)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("redis+cluster://:pw@10.0.0.1:7000,", "host 2 of 2 is empty"),
        ("redis+sentinel://:pw@10.0.0.1:abc/users", "the port 'abc' of '10.0.0.1:abc'"),
        ("redis+sentinel://:pw@10.0.0.1//0", "the Sentinel service name is empty"),
    ],
)
def test_a_malformed_revocation_url_is_refused_naming_the_setting(url: str, problem: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        bootstrap(Starlette(), settings(url, "users:"), registry=CollectorRegistry())
    assert caught.value.message.startswith("AuthSettings.revocation_redis_url: ")
    assert problem in caught.value.message
    assert "pw" not in caught.value.message


def test_without_revocation_settings_nothing_is_replicated(redis_prefix: str) -> None:
    app = Starlette()
    service = bootstrap(app, settings(None, redis_prefix), registry=CollectorRegistry())
    assert service.revocations is None
    assert [name for name in service.health.names if "revocation" in name] == []
    assert service.tokens is not None
    assert service.tokens.store is None


def test_the_prefix_defaults_to_the_issuer() -> None:
    """user-service (issuer "users") has always kept its revocations under "users:"."""
    assert AuthSettings(issuer="users", audience="aegis").revocation_key_prefix == "users:"
    assert (
        AuthSettings(issuer="users", audience="a", revocation_prefix="x:").revocation_key_prefix
        == "x:"
    )


@pytest.mark.scaleout
@pytest.mark.parametrize("topology", ["redis_cluster", "cluster_seeds", "redis_sentinel"])
async def test_revocations_on_a_redis_cluster_or_sentinel_url(
    request: pytest.FixtureRequest, topology: str
) -> None:
    """``redis+cluster://`` (one seed node or several) and ``redis+sentinel://``."""
    if topology == "cluster_seeds":
        nodes = request.getfixturevalue("redis_cluster").startup_nodes
        url = "redis+cluster://" + ",".join(f"{host}:{port}" for host, port in nodes)
    else:
        url = request.getfixturevalue(topology).url
    prefix = unique_name("revocations") + ":"
    app = Starlette(routes=[Route("/hello", hello)])
    service = bootstrap(app, settings(url, prefix), registry=CollectorRegistry())
    assert service.tokens is not None
    writer_client, close_writer = redis_client(url, timeout=2.0)  # the issuing service's
    writer = RedisTokenStore(writer_client, prefix=prefix)
    pair = service.tokens.issue_pair("kim", roles=["user"])
    auth = {"Authorization": f"Bearer {pair.access_token}"}
    try:
        async with serving(app) as http:
            assert check_status(await http.get("/health/ready")) == "pass"
            assert (await http.get("/hello", headers=auth)).status_code == 200
            principal = await service.tokens.verify(pair.access_token)
            assert principal.family is not None
            await writer.revoke_family(principal.family, expires_at=principal.expires_at or 0)

            async def refused() -> bool:
                answer = await http.get("/hello", headers=auth)
                return answer.status_code == 401 and answer.json()["code"] == "AUTH_TOKEN_REVOKED"

            await eventually(refused)
    finally:
        await close_writer()

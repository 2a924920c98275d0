"""ReplicatedTokenStore on real Redis: revocations made anywhere are honoured here, from memory.

Propagation is awaited with a bounded deadline, never a fixed sleep; the time it takes is
measured by benchmarks/auth_verify.py, not asserted here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisClusterUnreachableError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from aegis.auth import (
    AuthMiddleware,
    JWTKey,
    KeySet,
    RedisTokenStore,
    ReplicatedTokenStore,
    RevocationUnavailableError,
    TokenRevokedError,
    TokenService,
)
from aegis.auth._replica import LocalRevocations
from aegis.core.errors import ConfigurationError
from aegis.core.web import install_error_handlers
from aegis.testing import TcpProxy

pytestmark = pytest.mark.anyio
DEADLINE = 5.0  # seconds a revocation may take to arrive before the test fails (it takes ms)
Replicas = Callable[..., Awaitable[ReplicatedTokenStore]]


async def eventually(condition: Callable[[], object], timeout: float = DEADLINE) -> None:
    """Return once ``condition()`` is true; fail after ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.002)


def until(seconds: float) -> int:
    return int(time.time() + seconds)


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    """One sample of the registry's text exposition, as Prometheus reads it."""
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for found in family.samples:
            if found.name == name and found.labels == labels:
                return float(found.value)
    return 0.0


@pytest.fixture
async def writer(redis_url: str, redis_prefix: str) -> AsyncIterator[RedisTokenStore]:
    """Another service's store on the same Redis and prefix: its revocations are published."""
    client = Redis.from_url(redis_url)
    yield RedisTokenStore(client, prefix=redis_prefix)
    await client.aclose()


@pytest.fixture
async def replicas(
    redis_url: str, redis_prefix: str, registry: CollectorRegistry
) -> AsyncIterator[Replicas]:
    """Start replicas on the test's prefix (``url=`` another path to Redis); all closed after."""
    opened: list[tuple[ReplicatedTokenStore, Redis]] = []

    async def start(
        *, url: str = redis_url, wait: bool = True, **options: Any
    ) -> ReplicatedTokenStore:
        # One quick retry: redis-py's default backoff would slow the outage tests down only.
        client = Redis.from_url(
            url, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 1), client_name=redis_prefix
        )
        store = ReplicatedTokenStore(
            client, prefix=redis_prefix, metrics_registry=registry, **options
        )
        opened.append((store, client))
        if wait:
            assert await store.start()
        return store

    yield start
    for store, client in opened:
        await store.close()
        await client.aclose()


@dataclass(frozen=True)
class Outage:
    """A path to the shared Redis that a test can cut (the server keeps running)."""

    proxy: TcpProxy
    url: str
    """The Redis URL through the path."""


@pytest.fixture
def outage(redis_url: str) -> Iterator[Outage]:
    address = urlsplit(redis_url)
    with TcpProxy(address.hostname or "127.0.0.1", address.port or 6379) as proxy:
        yield Outage(proxy, redis_url.replace(address.netloc, proxy.address))


def sync_errors(registry: CollectorRegistry) -> float:
    """Channel failures counted so far, whatever their reason."""
    name = "aegis_auth_revocation_sync_errors_total"
    return sum(sample(registry, name, reason=reason) for reason in ("connection", "heartbeat"))


async def test_a_revocation_published_by_another_store_is_known_here_without_io(
    replicas: Replicas, writer: RedisTokenStore
) -> None:
    replica = await replicas()
    assert replica.revoked_nowait("jti-1", "family-1") is False
    await writer.revoke("jti-1", expires_at=until(60))
    await eventually(lambda: replica.revoked_nowait("jti-1", None))
    await writer.revoke_family("family-1", expires_at=until(60))
    await eventually(lambda: replica.revoked_nowait("another-jti", "family-1"))
    assert replica.revoked_nowait("another-jti", "family-2") is False
    assert await replica.is_revoked("jti-1", None)


async def test_start_loads_what_was_revoked_before_including_keys_of_the_old_format(
    replicas: Replicas, writer: RedisTokenStore, redis_url: str, redis_prefix: str
) -> None:
    await writer.revoke("before", expires_at=until(60))
    await writer.revoke_family("family-before", expires_at=until(60))
    client = Redis.from_url(redis_url)
    try:  # written by an earlier aegis-auth: value 1, the expiry only in the TTL
        await client.set(f"{redis_prefix}revoked:old-format", b"1", ex=60)
        await client.set(f"{redis_prefix}family:old-family", b"1", ex=60)
        await client.set(f"other-{redis_prefix}revoked:elsewhere", b"1", ex=60)
    finally:
        await client.aclose()
    replica = await replicas()
    assert replica.revoked_nowait("before", None)
    assert replica.revoked_nowait("x", "family-before")
    assert replica.revoked_nowait("old-format", None)
    assert replica.revoked_nowait("x", "old-family")
    assert replica.revoked_nowait("elsewhere", None) is False  # another prefix
    assert (await replica.health_check())["revoked_tokens"] == 2


async def test_a_family_revoked_on_another_service_refuses_its_tokens_in_verify_nowait(
    replicas: Replicas, writer: RedisTokenStore, registry: CollectorRegistry
) -> None:
    keys = KeySet([JWTKey.generate("k1", "EdDSA")])
    issuer = TokenService(keys, issuer="users", audience="aegis", store=writer)
    verifier = TokenService(
        keys, issuer="users", audience="aegis", store=await replicas(), metrics_registry=registry
    )
    pair = issuer.issue_pair("kim", roles=["user"])
    bystander = issuer.issue_pair("lee", roles=["user"]).access_token
    principal = await verifier.verify(pair.access_token)
    await verifier.verify(bystander)
    assert verifier.verify_nowait(pair.access_token) is principal
    assert principal.family is not None
    await issuer.revoke_family(principal.family)  # logout on the issuing service

    def refused() -> bool:
        try:
            verifier.verify_nowait(pair.access_token)
        except TokenRevokedError:
            return True
        return False

    await eventually(refused)
    with pytest.raises(TokenRevokedError):
        await verifier.verify(pair.access_token)
    with pytest.raises(TokenRevokedError):
        await verifier.refresh(pair.refresh_token)
    assert verifier.verify_nowait(bystander) is not None
    revoked = sample(
        registry, "aegis_auth_token_verifications_total", result="revoked", source="cache"
    )
    assert revoked >= 2


async def test_a_revocation_written_through_the_replica_is_known_here_at_once(
    replicas: Replicas,
) -> None:
    here, there = await replicas(), await replicas()
    await here.revoke("jti-1", expires_at=until(60))
    assert here.revoked_nowait("jti-1", None)  # no wait: this process wrote it
    await eventually(lambda: there.revoked_nowait("jti-1", None))
    assert await here.consume("refresh-1", expires_at=until(60))
    assert not await there.consume("refresh-1", expires_at=until(60))


def test_expired_revocations_are_swept_from_memory() -> None:
    now = [1_000_000.0]
    replica = LocalRevocations(5.0, wall_clock=lambda: now[0])
    replica.mark_complete(time.monotonic())
    replica.add("jti", "short", int(now[0]) + 10)
    replica.add("jti", "long", int(now[0]) + 100)
    replica.add("jti", "short", int(now[0]) + 50)  # revoked again, longer: the later expiry wins
    replica.add("family", "f", int(now[0]) + 10)
    replica.add("jti", "already-expired", int(now[0]) - 1)
    assert replica.revoked_nowait("already-expired", None) is False
    now[0] += 20
    replica.sweep()
    assert replica.tables == {"jti": {"short": 1_000_050, "long": 1_000_100}, "family": {}}
    assert replica.revoked_nowait("short", "f") is True
    now[0] += 60
    assert replica.revoked_nowait("short", None) is False  # expired, even before a sweep
    assert replica.revoked_nowait("long", None) is True
    now[0] += 30
    replica.sweep()
    assert replica.tables == {"jti": {}, "family": {}}


async def test_a_killed_subscription_reconnects_and_resyncs_what_was_not_announced(
    replicas: Replicas, redis_url: str, redis_prefix: str, registry: CollectorRegistry
) -> None:
    replica = await replicas()
    admin = Redis.from_url(redis_url)
    try:
        # A revocation whose message this replica never gets: only a resync can find it.
        await admin.set(f"{redis_prefix}revoked:unannounced", str(until(60)), ex=60)
        assert replica.revoked_nowait("unannounced", None) is False
        subscriptions = [
            client["id"]
            for client in await admin.client_list()
            if client.get("name") == redis_prefix and int(client.get("sub", 0)) > 0
        ]
        assert len(subscriptions) == 1
        await admin.client_kill_filter(_id=subscriptions[0])
    finally:
        await admin.aclose()
    await eventually(lambda: replica.revoked_nowait("unannounced", None))


async def test_after_an_outage_the_replica_resyncs_the_revocations_it_missed(
    replicas: Replicas,
    writer: RedisTokenStore,
    outage: Outage,
    registry: CollectorRegistry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="aegis.auth")
    replica = await replicas(url=outage.url, max_staleness=0.6)
    outage.proxy.cut()
    await writer.revoke("during-outage", expires_at=until(60))  # published while it is away
    await eventually(lambda: not replica.replica.fresh)
    assert replica.revoked_nowait("during-outage", None) is None  # stale: cannot say
    await eventually(lambda: sync_errors(registry) > 0)
    assert sample(registry, "aegis_auth_revocation_staleness_seconds") > 0.6
    outage.proxy.restore()
    await eventually(lambda: replica.revoked_nowait("during-outage", None))
    assert "revocations: channel" in caplog.text
    assert (await replica.health_check())["revoked_tokens"] == 1


async def test_a_server_that_never_answers_is_noticed_within_the_bound(
    replicas: Replicas, registry: CollectorRegistry
) -> None:
    """A black hole (connections accepted, nothing answered) leaves the replica stale."""

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.read(4096):
            pass
        writer.close()

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        replica = await replicas(url=f"redis://127.0.0.1:{port}/0", wait=False, max_staleness=0.3)
        assert not await replica.start(timeout=0.5)
        name = "aegis_auth_revocation_sync_errors_total"
        await eventually(lambda: sample(registry, name, reason="heartbeat") >= 1)
        with pytest.raises(RevocationUnavailableError, match="stale"):
            await replica.health_check()
        await replica.close()
    finally:
        server.close()


async def test_stale_and_redis_down_fails_closed_with_a_503_problem(
    replicas: Replicas, outage: Outage, registry: CollectorRegistry
) -> None:
    replica = await replicas(url=outage.url, max_staleness=0.5)
    tokens = TokenService(
        KeySet([JWTKey.generate("k1")]), issuer="users", audience="aegis", store=replica
    )
    token = tokens.issue_access_token("kim")

    async def hello(request: Request) -> Response:
        return PlainTextResponse("hello")

    app = Starlette(
        routes=[Route("/hello", hello)], middleware=[Middleware(AuthMiddleware, tokens=tokens)]
    )
    install_error_handlers(app)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://svc"
    ) as http:
        assert (await http.get("/hello", headers=headers)).status_code == 200
        outage.proxy.cut()
        await eventually(lambda: not replica.replica.fresh)
        answer = await http.get("/hello", headers=headers)
    assert answer.status_code == 503
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.headers["retry-after"] == "1"
    assert answer.json()["code"] == "AUTH_REVOCATION_UNAVAILABLE"
    with pytest.raises(RevocationUnavailableError):
        await replica.health_check()
    assert sample(registry, "aegis_auth_revocation_fail_closed_total") >= 1


async def test_stale_and_redis_down_fails_open_when_asked_to_logged_and_counted(
    replicas: Replicas,
    outage: Outage,
    registry: CollectorRegistry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="aegis.auth")
    replica = await replicas(url=outage.url, max_staleness=0.5, when_stale="open")
    outage.proxy.cut()
    await eventually(lambda: not replica.replica.fresh)
    assert await replica.is_revoked("any", "family") is False
    assert await replica.is_revoked("any", None) is False
    assert sample(registry, "aegis_auth_revocation_fail_open_total") == 2
    assert caplog.text.count("accepted unchecked") == 1  # throttled: one line, not one per call


async def test_a_replica_not_synced_yet_asks_redis(
    replicas: Replicas, writer: RedisTokenStore
) -> None:
    replica = await replicas(wait=False)  # never started: no replica to answer from
    await writer.revoke("jti-1", expires_at=until(60))
    assert replica.revoked_nowait("jti-1", None) is None
    assert await replica.is_revoked("jti-1", None)
    assert not await replica.is_revoked("jti-2", None)
    with pytest.raises(RevocationUnavailableError, match="stale"):
        await replica.health_check()


@pytest.mark.parametrize("when_stale", ["closed", "open"])
async def test_a_cluster_client_reaching_no_node_is_answered_as_redis_down(
    replicas: Replicas, monkeypatch: pytest.MonkeyPatch, when_stale: str
) -> None:
    """redis-py's cluster client raises RedisClusterUnreachableError, not a RedisError."""
    replica = await replicas(wait=False, when_stale=when_stale)  # stale: checks ask Redis

    async def unreachable(jti: str, family: str | None) -> bool:
        raise RedisClusterUnreachableError("Redis Cluster cannot be connected")

    monkeypatch.setattr(replica.redis, "is_revoked", unreachable)
    if when_stale == "open":
        assert await replica.is_revoked("jti-1", None) is False
    else:
        with pytest.raises(RevocationUnavailableError):
            await replica.is_revoked("jti-1", None)


async def test_verify_nowait_answers_from_memory_while_redis_is_unreachable(
    replicas: Replicas, writer: RedisTokenStore, outage: Outage
) -> None:
    replica = await replicas(url=outage.url, max_staleness=30)
    tokens = TokenService(
        KeySet([JWTKey.generate("k1")]), issuer="users", audience="aegis", store=replica
    )
    valid, revoked = tokens.issue_access_token("kim"), tokens.issue_access_token("lee")
    await tokens.verify(valid)
    lee = await tokens.verify(revoked)
    await writer.revoke(str(lee.token_id), expires_at=until(60))
    await eventually(lambda: replica.revoked_nowait(str(lee.token_id), None))
    outage.proxy.cut()  # from now on any I/O would fail: the answers below come from memory
    assert tokens.verify_nowait(valid) is not None
    with pytest.raises(TokenRevokedError):
        tokens.verify_nowait(revoked)
    details = await replica.health_check()
    assert details["revoked_tokens"] == 1
    assert details["when_stale"] == "closed"


async def test_an_unreadable_message_is_counted_and_the_next_one_applied(
    replicas: Replicas,
    writer: RedisTokenStore,
    redis_url: str,
    registry: CollectorRegistry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="aegis.auth")
    replica = await replicas()
    client = Redis.from_url(redis_url)
    try:
        for garbage in (b"\xff", b"[]", b'{"kind": "jti", "id": 7, "expires_at": 1}'):
            await client.publish(writer.channel, garbage)
    finally:
        await client.aclose()
    await writer.revoke("after", expires_at=until(60))
    await eventually(lambda: replica.revoked_nowait("after", None))
    assert sample(registry, "aegis_auth_revocation_sync_errors_total", reason="message") == 3
    assert "unreadable message" in caplog.text


def test_settings_that_cannot_work_are_refused() -> None:
    client = Redis.from_url("redis://127.0.0.1:1")
    for options in ({"max_staleness": 0}, {"check_timeout": -1}, {"when_stale": "ajar"}):
        with pytest.raises(ConfigurationError, match=r"max_staleness|when_stale"):
            ReplicatedTokenStore(client, **options)

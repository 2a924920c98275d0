"""Rate limits: three algorithms on Redis and in memory, decorator, ASGI middleware."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from aegis.cache import (
    Cache,
    CacheSettings,
    CacheUnavailableError,
    RateLimiter,
    RateLimitMiddleware,
    rate_limited,
    user_key,
)
from aegis.core.context import request_context
from aegis.core.errors import InvalidInputError, RateLimitedError

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("algorithm", ["fixed_window", "sliding_window", "token_bucket"])
async def test_each_algorithm_allows_the_limit_then_refuses_with_a_retry_time(
    cache: Cache, algorithm: Any
) -> None:
    limiter = RateLimiter(cache, 5, 60, algorithm=algorithm, name=algorithm)
    results = [await limiter.hit("client:a") for _ in range(7)]
    assert [r.allowed for r in results] == [True] * 5 + [False] * 2
    assert [r.remaining for r in results[:5]] == [4, 3, 2, 1, 0]
    refused = results[-1]
    assert refused.remaining == 0
    assert 0 < refused.retry_after <= 60
    assert 0 < refused.reset_after <= 120
    assert (await limiter.hit("client:b")).allowed  # keys are counted apart


async def test_a_costly_request_counts_more_than_one(cache: Cache) -> None:
    limiter = RateLimiter(cache, 10, 60, algorithm="token_bucket")
    assert (await limiter.hit("k", cost=8)).remaining == 2
    assert not (await limiter.hit("k", cost=3)).allowed
    assert (await limiter.hit("k", cost=2)).allowed


async def _allowed_again(limiter: RateLimiter) -> bool:
    """Hit until allowed; the limit's period has to pass, so this waits in small steps."""
    for _ in range(200):
        if (await limiter.hit("k")).allowed:
            return True
        await asyncio.sleep(limiter.period_ms / 1000 / 10)
    return False


# Periods of a second: the hits that must land in one window or before a refill stay there on a
# loaded machine (a 50 ms period let a slow hit see the next window and flake).
async def test_the_token_bucket_refills_over_time(cache: Cache) -> None:
    limiter = RateLimiter(cache, 2, 1, algorithm="token_bucket")
    assert (await limiter.hit("k", cost=2)).allowed
    refused = await limiter.hit("k")
    assert not refused.allowed
    assert await _allowed_again(limiter), "the bucket never refilled"


async def test_the_fixed_window_resets_after_its_period(cache: Cache) -> None:
    limiter = RateLimiter(cache, 1, 0.02, algorithm="fixed_window")
    assert (await limiter.hit("k")).allowed
    assert await _allowed_again(limiter), "the window never reset"


async def test_the_sliding_window_carries_the_previous_window_over(cache: Cache) -> None:
    limiter = RateLimiter(cache, 4, 1, algorithm="sliding_window")
    for _ in range(4):
        assert (await limiter.hit("k")).allowed
    assert not (await limiter.hit("k")).allowed
    assert await _allowed_again(limiter)  # it slides open again


async def test_the_decorator_raises_rate_limited_with_headers(cache: Cache) -> None:
    limiter = RateLimiter(cache, 2, 60, name="search")

    @rate_limited(limiter, key="user:{user}")
    async def search(user: str, query: str = "") -> str:
        return query

    assert await search("a", "x") == "x"
    assert await search("a") == ""
    with pytest.raises(RateLimitedError) as caught:
        await search("a")
    assert caught.value.retry_after is not None
    assert caught.value.retry_after >= 1
    assert caught.value.headers["RateLimit-Limit"] == "2"  # type: ignore[attr-defined]
    assert await search(user="b") == ""

    @rate_limited(limiter, key=lambda user: f"fn:{user}")
    async def other(user: str) -> str:
        return user

    @rate_limited(limiter)
    async def shared() -> str:
        return "ok"

    assert await other("z") == "z"
    assert await shared() == "ok"


async def test_redis_down_fails_open_or_closed_by_choice(registry: Any) -> None:
    cache = Cache(
        CacheSettings(url="redis://127.0.0.1:1/0", timeout=0.05, connect_timeout=0.05),
        registry=registry,
    )
    assert (await RateLimiter(cache, 1, 60).hit("k")).allowed
    closed = RateLimiter(cache, 1, 60, fail_open=False)
    with pytest.raises(CacheUnavailableError):
        await closed.hit("k")
    await cache.close()


def test_invalid_limits_are_refused() -> None:
    cache = Cache()
    with pytest.raises(InvalidInputError, match="limit"):
        RateLimiter(cache, 0, 60)
    with pytest.raises(InvalidInputError, match="period"):
        RateLimiter(cache, 1, 0)
    with pytest.raises(InvalidInputError, match="algorithm"):
        RateLimiter(cache, 1, 1, algorithm="leaky")  # type: ignore[arg-type]


async def _app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def test_the_middleware_answers_429_problem_json_with_rate_limit_headers(
    cache: Cache,
) -> None:
    exempt = ["/health*", "GET /docs"]
    app = RateLimitMiddleware(_app, RateLimiter(cache, 2, 60), exempt=exempt)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        first = await client.get("/items")
        assert first.status_code == 200
        assert first.headers["ratelimit-limit"] == "2"
        assert first.headers["ratelimit-remaining"] == "1"
        await client.get("/items")
        refused = await client.get("/items", headers={"x-request-id": "r-1"})
        assert refused.status_code == 429
        assert refused.headers["content-type"] == "application/problem+json"
        assert int(refused.headers["retry-after"]) >= 1
        assert refused.headers["ratelimit-remaining"] == "0"
        body = refused.json()
        assert body["code"] == "RATE_LIMITED"
        assert body["instance"] == "/items"
        assert (await client.get("/health")).status_code == 200
        assert (await client.get("/health/ready")).status_code == 200
        assert (await client.get("/docs")).status_code == 200
        assert (await client.post("/docs")).status_code == 429


class _User:
    """A user as an authentication middleware puts it in ``scope["user"]``."""

    is_authenticated = True

    def __init__(self, identity: str) -> None:
        self.identity = identity


def _authenticated(app: Any) -> Any:
    """Sets ``scope["user"]`` from an ``x-user`` header, as an auth middleware would."""

    async def authenticate(scope: Any, receive: Any, send: Any) -> None:
        for name, value in scope["headers"]:
            if name == b"x-user":
                scope["user"] = _User(value.decode())
        await app(scope, receive, send)

    return authenticate


async def test_the_middleware_keys_by_user_or_route_and_can_fail_closed(cache: Cache) -> None:
    by_user = RateLimitMiddleware(_app, RateLimiter(cache, 1, 60, name="u"), key="user")
    by_route = RateLimitMiddleware(_app, RateLimiter(cache, 1, 60, name="r"), key="route")
    skip_all = RateLimitMiddleware(_app, RateLimiter(cache, 1, 60, name="n"), key=lambda _: None)
    for app in (by_user, by_route, skip_all):
        transport = httpx.ASGITransport(app=_authenticated(app))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            assert (await client.get("/a", headers={"x-user": "u-1"})).status_code == 200
            second = await client.get("/a", headers={"x-user": "u-1"})
            assert (await client.get("/b", headers={"x-user": "u-2"})).status_code == 200
        assert second.status_code == (200 if app is skip_all else 429)

    down = Cache(CacheSettings(url="redis://127.0.0.1:1/0", timeout=0.05, connect_timeout=0.05))
    closed = RateLimitMiddleware(_app, RateLimiter(down, 1, 60, fail_open=False))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=closed), base_url="http://test"
    ) as client:
        answer = await client.get("/a")
    assert answer.status_code == 503
    assert answer.json()["code"] == "CACHE_UNAVAILABLE"
    await down.close()


async def test_the_user_key_ignores_a_user_id_left_in_the_context(cache: Cache) -> None:
    """A context value may be an earlier request's (a server reusing a context): the scope wins."""
    app = RateLimitMiddleware(_app, RateLimiter(cache, 1, 60, name="stale"), key="user")
    transport = httpx.ASGITransport(app=_authenticated(app))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        with request_context(user_id="admin-1"):
            assert (await client.get("/a", headers={"x-user": "admin-1"})).status_code == 200
            anonymous = await client.get("/a")  # keyed by its client address, not admin-1
    assert anonymous.status_code == 200
    assert user_key({"user": _User("u-9"), "client": ("10.0.0.1", 1)}) == "user:u-9"
    assert user_key({"client": ("10.0.0.1", 1)}) == "client:10.0.0.1"


async def test_non_http_scopes_pass_through(cache: Cache) -> None:
    seen: list[str] = []

    async def lifespan_app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["type"])

    app = RateLimitMiddleware(lifespan_app, RateLimiter(cache, 1, 60))

    async def receive() -> dict[str, Any]:
        return {"type": "lifespan.startup"}

    async def send(message: Any) -> None:
        seen.append(message["type"])

    await app({"type": "lifespan"}, receive, send)
    assert seen == ["lifespan"]

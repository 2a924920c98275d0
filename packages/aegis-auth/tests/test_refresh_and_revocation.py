"""Login, refresh rotation, reuse detection and logout end to end, on memory and real Redis."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel
from starlette.types import ASGIApp

from aegis.auth import (
    AuthMiddleware,
    CurrentUser,
    InvalidCredentialsError,
    JWTKey,
    KeySet,
    PasswordService,
    RedisTokenStore,
    TokenRevokedError,
    TokenService,
    TokenStore,
)
from aegis.core.utils.security import PasswordHasher
from aegis.core.web import install_error_handlers

pytestmark = pytest.mark.anyio
FAST_HASHER = PasswordHasher(memory_cost=1024, time_cost=1)  # tests only: cheap argon2id


class Login(BaseModel):
    username: str
    password: str


class Refresh(BaseModel):
    refresh_token: str


@pytest.fixture
async def users_app(any_store: TokenStore) -> ASGIApp:
    tokens = TokenService(
        KeySet([JWTKey.generate("k1", "ES256")]), issuer="users", audience="users", store=any_store
    )
    passwords = PasswordService(FAST_HASHER)
    accounts = {"kim": await passwords.hash("correct horse battery staple")}
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/login")
    async def login(body: Login) -> dict[str, Any]:
        check = await passwords.verify(body.password, accounts.get(body.username))
        if not check.valid:
            raise InvalidCredentialsError
        return tokens.issue_pair(body.username, roles=["user"], scopes=["profile"]).to_response()

    @app.post("/refresh")
    async def refresh(body: Refresh) -> dict[str, Any]:
        return (await tokens.refresh(body.refresh_token)).to_response()

    @app.post("/logout")
    async def logout(user: CurrentUser) -> dict[str, str]:
        assert user.family is not None
        await tokens.revoke_family(user.family)
        return {"status": "logged out"}

    @app.get("/me")
    async def me(user: CurrentUser) -> dict[str, Any]:
        return {"subject": user.subject, "scopes": sorted(user.scopes)}

    app.add_middleware(AuthMiddleware, tokens=tokens, public_paths=["/login", "/refresh"])
    return app


@pytest.fixture
async def http(users_app: ASGIApp) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=users_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://users") as client:
        yield client


async def login(http: httpx.AsyncClient) -> dict[str, Any]:
    response = await http.post(
        "/login", json={"username": "kim", "password": "correct horse battery staple"}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_refresh_returns_a_new_pair_and_uses_up_the_old_refresh_token(
    http: httpx.AsyncClient,
) -> None:
    first = await login(http)
    assert first["token_type"] == "Bearer"
    assert (await http.get("/me", headers=bearer(first["access_token"]))).json() == {
        "subject": "kim",
        "scopes": ["profile"],
    }
    renewed = await http.post("/refresh", json={"refresh_token": first["refresh_token"]})
    assert renewed.status_code == 200
    second = renewed.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert (await http.get("/me", headers=bearer(second["access_token"]))).json()["scopes"] == [
        "profile"
    ]
    third = await http.post("/refresh", json={"refresh_token": second["refresh_token"]})
    assert third.status_code == 200


async def test_reused_refresh_token_revokes_the_whole_family(http: httpx.AsyncClient) -> None:
    first = await login(http)
    second = (await http.post("/refresh", json={"refresh_token": first["refresh_token"]})).json()
    replay = await http.post("/refresh", json={"refresh_token": first["refresh_token"]})
    assert replay.status_code == 401
    assert (replay.json()["code"], replay.json()["reason"]) == ("AUTH_TOKEN_REVOKED", "reused")
    # The legitimate holder's newer tokens die with the family (RFC 9700 section 4.14.2).
    later = await http.post("/refresh", json={"refresh_token": second["refresh_token"]})
    assert (later.status_code, later.json()["code"]) == (401, "AUTH_TOKEN_REVOKED")
    me = await http.get("/me", headers=bearer(second["access_token"]))
    assert (me.status_code, me.json()["code"]) == (401, "AUTH_TOKEN_REVOKED")
    assert 'error="invalid_token"' in me.headers["www-authenticate"]
    # Another login is another family and is unaffected.
    fresh = await login(http)
    assert (await http.get("/me", headers=bearer(fresh["access_token"]))).status_code == 200


async def test_concurrent_refreshes_with_one_token_let_exactly_one_win(
    http: httpx.AsyncClient,
) -> None:
    first = await login(http)
    answers = await asyncio.gather(
        *(http.post("/refresh", json={"refresh_token": first["refresh_token"]}) for _ in range(5))
    )
    assert sorted(answer.status_code for answer in answers) == [200, 401, 401, 401, 401]


async def test_access_token_cannot_refresh(http: httpx.AsyncClient) -> None:
    first = await login(http)
    answer = await http.post("/refresh", json={"refresh_token": first["access_token"]})
    assert (answer.status_code, answer.json()["reason"]) == (401, "token_type")


async def test_logout_revokes_access_and_refresh_tokens_of_the_login(
    http: httpx.AsyncClient,
) -> None:
    pair = await login(http)
    assert (await http.post("/logout", headers=bearer(pair["access_token"]))).status_code == 200
    me = await http.get("/me", headers=bearer(pair["access_token"]))
    assert me.json()["code"] == "AUTH_TOKEN_REVOKED"
    renewed = await http.post("/refresh", json={"refresh_token": pair["refresh_token"]})
    assert renewed.json()["code"] == "AUTH_TOKEN_REVOKED"


async def test_wrong_password_and_unknown_user_get_the_same_answer(
    http: httpx.AsyncClient,
) -> None:
    wrong = await http.post("/login", json={"username": "kim", "password": "guess"})
    unknown = await http.post("/login", json={"username": "lee", "password": "guess"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert wrong.json()["code"] == "AUTH_CREDENTIALS_INVALID"
    assert wrong.headers["www-authenticate"] == unknown.headers["www-authenticate"] == "Bearer"


async def test_single_token_revocation_by_jti(any_store: TokenStore) -> None:
    tokens = TokenService(KeySet([JWTKey.generate("k")]), issuer="i", audience="a", store=any_store)
    pair = tokens.issue_pair("u")
    other = tokens.issue_access_token("u")
    await tokens.revoke(pair.refresh_token)
    with pytest.raises(TokenRevokedError):
        await tokens.refresh(pair.refresh_token)
    await tokens.revoke(pair.access_token)
    with pytest.raises(TokenRevokedError):
        await tokens.verify(pair.access_token)
    assert (await tokens.verify(other)).subject == "u"


async def test_redis_store_keeps_entries_only_while_tokens_live(
    redis_store: RedisTokenStore, redis_url: str, redis_prefix: str
) -> None:
    from redis.asyncio import Redis

    await redis_store.revoke("j1", expires_at=2**31)
    await redis_store.revoke_family("f1", expires_at=int(time.time()) + 100)
    await redis_store.revoke_family("f0", expires_at=0)  # already expired: kept at most 1 s
    assert await redis_store.consume("r1", expires_at=2**31)
    assert not await redis_store.consume("r1", expires_at=2**31)
    assert await redis_store.is_revoked("j1", None)
    assert await redis_store.is_revoked("other", "f1")
    assert not await redis_store.is_revoked("other", "f2")
    client = Redis.from_url(redis_url)
    try:
        names = sorted([key.decode() async for key in client.scan_iter(f"{redis_prefix}[fru]*")])
        assert set(names) - {f"{redis_prefix}family:f0"} == {
            f"{redis_prefix}family:f1",
            f"{redis_prefix}revoked:j1",
            f"{redis_prefix}used:r1",
        }
        assert 90 < await client.ttl(f"{redis_prefix}family:f1") <= 100
        assert await client.pttl(f"{redis_prefix}family:f0") <= 1000
        assert await client.ttl(f"{redis_prefix}revoked:j1") > 10**8
    finally:
        await client.aclose()

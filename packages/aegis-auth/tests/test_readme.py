"""The README's examples run as written, against real Redis."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from redis.asyncio import Redis

from aegis.auth import JWTKey, KeySet, RedisTokenStore, TokenRevokedError

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def block(heading: str) -> str:
    """The first python block after the heading."""
    section = README.split(f"## {heading}\n", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None
    return match.group(1)


@pytest.mark.anyio
async def test_quick_start_logs_in_refreshes_and_enforces_roles(redis_url: str) -> None:
    namespace: dict[str, Any] = {"REDIS_URL": redis_url}
    exec(block("Quick start"), namespace)  # noqa: S102 - the README's own code
    namespace["users"]["kim"] = ("manager", await namespace["passwords"].hash("pw-123456"))
    transport = httpx.ASGITransport(app=namespace["app"])
    async with httpx.AsyncClient(transport=transport, base_url="http://users") as http:
        pair = (await http.post("/login", json={"username": "kim", "password": "pw-123456"})).json()
        assert pair["expires_in"] == 900
        auth = {"Authorization": f"Bearer {pair['access_token']}"}
        assert (await http.get("/me", headers=auth)).json() == {
            "subject": "kim",
            "roles": ["manager", "user"],
        }
        assert (await http.delete("/policies/1", headers=auth)).status_code == 200
        assert (await http.get("/audit", headers=auth)).json()["code"] == "AUTH_PERMISSION_DENIED"
        renewed = await http.post("/refresh", json={"refresh_token": pair["refresh_token"]})
        assert renewed.status_code == 200
        replay = await http.post("/refresh", json={"refresh_token": pair["refresh_token"]})
        assert (replay.status_code, replay.json()["reason"]) == (401, "reused")
        missing = await http.get("/me")
        assert missing.headers["www-authenticate"] == "Bearer"
        assert (await http.get("/.well-known/jwks.json")).json()["keys"][0]["kid"] == "2026-01"
        wrong = await http.post("/login", json={"username": "lee", "password": "x"})
        assert wrong.json()["code"] == "AUTH_CREDENTIALS_INVALID"
    await namespace["tokens"].store.client.aclose()


def test_rotation_jwks_and_service_account_examples_run() -> None:
    namespace: dict[str, Any] = {}
    without_redis = block("Quick start").replace(
        "RedisTokenStore(Redis.from_url(REDIS_URL))", "None"
    )
    exec(without_redis, namespace)  # noqa: S102
    exec(block("Tokens"), namespace)  # noqa: S102
    assert namespace["keys"].kids == ["2026-07"]
    exec(block("JWKS: verifying another service's tokens"), namespace)  # noqa: S102
    exec(block("Service accounts"), namespace)  # noqa: S102
    assert namespace["account"].secret_hash.startswith("$argon2id$")


@pytest.mark.anyio
async def test_revocation_example_follows_a_logout_made_by_another_service(
    redis_url: str, redis_prefix: str
) -> None:
    keys = KeySet([JWTKey.generate("2026-01", "EdDSA")])
    namespace: dict[str, Any] = {"REDIS_URL": redis_url, "keys": keys}
    code = block("Revocation across services").replace('"users:"', repr(redis_prefix))
    exec(code, namespace)  # noqa: S102
    tokens, store = namespace["tokens"], namespace["store"]
    lifespan = namespace["lifespan"](None)
    await anext(lifespan)  # started
    issuer_client = Redis.from_url(redis_url)
    try:
        pair = tokens.issue_pair("kim")
        principal = await tokens.verify(pair.access_token)
        issuer = RedisTokenStore(issuer_client, prefix=redis_prefix)  # the issuing service's
        await issuer.revoke_family(principal.family, expires_at=principal.expires_at)
        with anyio.fail_after(5):
            while store.revoked_nowait(str(principal.token_id), principal.family) is not True:
                await anyio.sleep(0.002)
        with pytest.raises(TokenRevokedError):
            tokens.verify_nowait(pair.access_token)
        assert (await store.health_check())["revoked_families"] == 1
    finally:
        await anext(lifespan, None)  # stopped
        await issuer_client.aclose()
        await store.redis.client.aclose()

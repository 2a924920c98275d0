"""The README's examples run as written, against real Redis."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest

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

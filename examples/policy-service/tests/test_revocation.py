"""A login revoked on user-service is refused by policy-service: both share one Redis.

user-service writes the revocation (SET and PUBLISH); policy-service's replica learns it and
refuses the token from memory. Here both run in this process (user-service on a real socket);
examples/tests/test_across_services.py runs them as two processes.
"""

from typing import Any

import anyio
import httpx
import pytest
from pydantic import SecretStr

pytestmark = pytest.mark.anyio

PASSWORD = "Correct-Horse-Battery-9"
DEADLINE = 5.0  # seconds a revocation may take to arrive before the test fails (it takes ms)


@pytest.fixture
def revocations(redis_url: str, redis_prefix: str) -> dict[str, Any]:
    """Both services on the shared test Redis, under this test's own prefix."""
    return {"redis_url": SecretStr(redis_url), "auth": {"revocation_prefix": redis_prefix}}


async def sign_up(users: httpx.AsyncClient, email: str) -> dict[str, Any]:
    """Register ``email`` at user-service and log in: the token pair."""
    user = {"email": email, "name": email.split("@", maxsplit=1)[0], "password": PASSWORD}
    assert (await users.post("/users", json=user)).status_code == 201
    login = await users.post("/auth/token", json={"email": email, "password": PASSWORD})
    assert login.status_code == 200, login.text
    pair: dict[str, Any] = login.json()
    return pair


def bearer(pair: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {pair['access_token']}"}


async def refused_within_the_bound(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    with anyio.fail_after(DEADLINE):
        while (answer := await client.get("/policies", headers=auth)).status_code == 200:
            await anyio.sleep(0.005)
    assert answer.status_code == 401
    assert answer.json()["code"] == "AUTH_TOKEN_REVOKED"


async def test_a_logout_on_user_service_is_refused_by_policy_service(
    client: httpx.AsyncClient, users: httpx.AsyncClient
) -> None:
    kim, lee = await sign_up(users, "kim@example.com"), await sign_up(users, "lee@example.com")
    assert (await client.get("/policies", headers=bearer(kim))).status_code == 200
    assert (await users.post("/auth/logout", headers=bearer(kim))).status_code == 204
    assert (await users.get("/users/me", headers=bearer(kim))).status_code == 401  # at once
    await refused_within_the_bound(client, bearer(kim))
    assert (await client.get("/policies", headers=bearer(lee))).status_code == 200
    health = (await client.get("/health/ready")).json()
    revocations = [v[0] for k, v in health["checks"].items() if k.startswith("revocations")]
    assert revocations[0]["status"] == "pass"
    assert revocations[0]["details"]["revoked_families"] == 1


async def test_a_replayed_refresh_token_revokes_the_login_on_policy_service_too(
    client: httpx.AsyncClient, users: httpx.AsyncClient
) -> None:
    login = await sign_up(users, "kim@example.com")
    renewed = await users.post("/auth/refresh", json={"refresh_token": login["refresh_token"]})
    assert renewed.status_code == 200
    assert (await client.get("/policies", headers=bearer(renewed.json()))).status_code == 200
    replayed = await users.post("/auth/refresh", json={"refresh_token": login["refresh_token"]})
    assert replayed.json()["reason"] == "reused"
    await refused_within_the_bound(client, bearer(renewed.json()))

import uuid
from typing import Any

import anyio
import httpx
import pytest
from fastapi import FastAPI
from user_events import UserCreated, UserData

from aegis.msg import EventPublisher, EventRegistry, InMemoryTransport

pytestmark = pytest.mark.anyio

PASSWORD = "Correct-Horse-Battery-9"
POLICY = {"number": "P-1", "premium": "99.90", "starts_on": "2027-01-01", "status": "active"}


async def sign_up(users: httpx.AsyncClient, email: str) -> tuple[str, dict[str, str]]:
    """Register ``email`` at user-service; its id and an Authorization header."""
    created = await users.post(
        "/users",
        json={"email": email, "name": email.split("@", maxsplit=1)[0], "password": PASSWORD},
    )
    assert created.status_code == 201, created.text
    return created.json()["id"], await token(users, email, PASSWORD)


async def token(users: httpx.AsyncClient, email: str, password: str) -> dict[str, str]:
    response = await users.post("/auth/token", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def admin(users: httpx.AsyncClient) -> dict[str, str]:
    return await token(users, "admin@example.com", "Admin-Passw0rd-Test")


async def eventually_status(
    client: httpx.AsyncClient, policy_id: str, headers: dict[str, str], status: str
) -> dict[str, Any]:
    """The policy once it has ``status`` (an event has to cross from user-service first)."""
    with anyio.fail_after(10):
        while True:
            body: dict[str, Any] = (
                await client.get(f"/policies/{policy_id}", headers=headers)
            ).json()
            if body["status"] == status:
                return body
            await anyio.sleep(0.02)


async def test_a_user_creates_reads_updates_and_deletes_own_policy(
    client: httpx.AsyncClient, users: httpx.AsyncClient
) -> None:
    kim_id, kim = await sign_up(users, "kim@example.com")
    created = await client.post("/policies", json=POLICY, headers=kim)
    assert created.status_code == 201, created.text
    policy = created.json()
    assert (policy["holder_id"], policy["premium"], policy["version"]) == (kim_id, "99.90", 1)

    read = await client.get(f"/policies/{policy['id']}", headers=kim)
    assert read.json()["number"] == "P-1"
    patched = await client.patch(
        f"/policies/{policy['id']}", json={"version": 1, "status": "lapsed"}, headers=kim
    )
    assert (patched.json()["status"], patched.json()["version"]) == ("lapsed", 2)
    stale = await client.patch(
        f"/policies/{policy['id']}", json={"version": 1, "status": "active"}, headers=kim
    )
    assert (stale.status_code, stale.json()["code"]) == (409, "DB_CONFLICT")
    assert (await client.delete(f"/policies/{policy['id']}", headers=kim)).status_code == 204
    assert (await client.get(f"/policies/{policy['id']}", headers=kim)).status_code == 404


async def test_others_see_neither_policy_nor_listing_but_admin_does(
    client: httpx.AsyncClient, users: httpx.AsyncClient
) -> None:
    _, kim = await sign_up(users, "kim@example.com")
    bo_id, bo = await sign_up(users, "bo@example.com")
    created = await client.post("/policies", json=POLICY, headers=kim)
    assert created.status_code == 201, created.text
    policy = created.json()
    other = await client.post("/policies", json={**POLICY, "number": "P-2"}, headers=bo)
    assert other.status_code == 201, other.text

    assert (await client.get(f"/policies/{policy['id']}", headers=bo)).status_code == 403
    foreign = await client.post(
        "/policies", json={**POLICY, "number": "P-3", "holder_id": policy["holder_id"]}, headers=bo
    )
    assert (foreign.status_code, foreign.json()["code"]) == (403, "AUTH_PERMISSION_DENIED")
    own = (await client.get("/policies", headers=bo)).json()
    assert [p["number"] for p in own["items"]] == ["P-2"]

    boss = await admin(users)
    every = (await client.get("/policies", params={"sort": "number"}, headers=boss)).json()
    assert [p["number"] for p in every["items"]] == ["P-1", "P-2"]
    bos = (await client.get("/policies", params={"holder_id": bo_id}, headers=boss)).json()
    assert [p["number"] for p in bos["items"]] == ["P-2"]
    active = (await client.get("/policies", params={"status": "draft"}, headers=boss)).json()
    assert active["items"] == []


async def test_reading_needs_a_valid_token_from_user_service(client: httpx.AsyncClient) -> None:
    missing = await client.get("/policies")
    assert (missing.status_code, missing.json()["code"]) == (401, "AUTH_TOKEN_MISSING")
    forged = await client.get("/policies", headers={"Authorization": "Bearer a.b.c"})
    assert forged.status_code == 401


async def test_a_viewer_may_read_but_not_write(
    client: httpx.AsyncClient, users: httpx.AsyncClient
) -> None:
    vi_id, _ = await sign_up(users, "vi@example.com")
    await users.patch(
        f"/users/{vi_id}", json={"version": 1, "role": "viewer"}, headers=await admin(users)
    )
    viewer = await token(users, "vi@example.com", PASSWORD)
    assert (await client.get("/policies", headers=viewer)).status_code == 200
    denied = await client.post("/policies", json=POLICY, headers=viewer)
    assert (denied.status_code, denied.json()["code"]) == (403, "AUTH_PERMISSION_DENIED")


async def test_unknown_holder_is_refused_after_asking_user_service(
    client: httpx.AsyncClient, users: httpx.AsyncClient
) -> None:
    refused = await client.post(
        "/policies", json={**POLICY, "holder_id": str(uuid.uuid4())}, headers=await admin(users)
    )
    assert refused.status_code == 422
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["code"] == "POLICY_HOLDER_UNKNOWN"


async def test_user_deleted_event_cancels_policies_and_blocks_new_ones(
    client: httpx.AsyncClient, users: httpx.AsyncClient
) -> None:
    kim_id, kim = await sign_up(users, "kim@example.com")
    policy = (await client.post("/policies", json=POLICY, headers=kim)).json()
    boss = await admin(users)
    assert (await users.delete(f"/users/{kim_id}", headers=boss)).status_code == 204

    cancelled = await eventually_status(client, policy["id"], boss, "cancelled")
    assert cancelled["version"] == 2
    refused = await client.post(
        "/policies", json={**POLICY, "number": "P-9", "holder_id": kim_id}, headers=boss
    )
    assert (refused.status_code, refused.json()["code"]) == (409, "POLICY_HOLDER_DELETED")


async def test_replayed_and_outdated_user_events_change_nothing(
    policies: FastAPI,
    client: httpx.AsyncClient,
    users: httpx.AsyncClient,
    transport: InMemoryTransport,
) -> None:
    kim_id, kim = await sign_up(users, "kim@example.com")
    created = await client.post("/policies", json=POLICY, headers=kim)
    assert created.status_code == 201, created.text
    boss = await admin(users)
    await users.delete(f"/users/{kim_id}", headers=boss)
    await eventually_status(client, created.json()["id"], boss, "cancelled")

    publisher = EventPublisher(transport, source="test", registry=EventRegistry())
    resurrect = UserCreated(
        data=UserData(user_id=kim_id, email="kim@example.com", name="kim", role="user", version=1)
    )
    await publisher.publish(resurrect)
    await publisher.publish(resurrect)  # the same event id again
    with anyio.fail_after(10):
        while transport.committed("policy-service", "users") < len(transport.messages("users")):
            await anyio.sleep(0.02)
    refused = await client.post(
        "/policies", json={**POLICY, "number": "P-9", "holder_id": kim_id}, headers=boss
    )
    assert refused.json()["code"] == "POLICY_HOLDER_DELETED"


async def test_health_reports_database_jwks_and_event_subscriber(
    client: httpx.AsyncClient,
) -> None:
    health = (await client.get("/health")).json()
    assert health["status"] == "pass"
    assert {name.split(":")[0] for name in health["checks"]} == {"database", "jwks", "events"}
    assert (await client.get("/health/live")).status_code == 200
    assert "aegis_http" in (await client.get("/metrics")).text

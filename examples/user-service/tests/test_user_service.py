import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from aegis.msg import InMemoryTransport

pytestmark = pytest.mark.anyio

PASSWORD = "Correct-Horse-Battery-9"
ADMIN = {"email": "admin@example.com", "password": "Admin-Passw0rd-Test"}


async def register(client: httpx.AsyncClient, email: str, name: str) -> dict[str, Any]:
    response = await client.post(
        "/users", json={"email": email, "name": name, "password": PASSWORD}
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def login(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> dict[str, Any]:
    response = await client.post("/auth/token", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def bearer(tokens: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


async def published(app: FastAPI, transport: InMemoryTransport, count: int) -> list[str]:
    """The event types on the users topic once the outbox relay has sent ``count`` of them."""
    while len(transport.messages("users")) < count:
        await app.state.service.relay.next_attempt()
    return [dict(m.headers())["ce_type"].decode() for m in transport.messages("users")]


async def test_register_login_and_me(client: httpx.AsyncClient) -> None:
    kim = await register(client, "Kim@Example.com", "Kim")
    assert kim["email"] == "kim@example.com"
    assert "password_hash" not in kim
    tokens = await login(client, "kim@example.com")
    assert tokens["token_type"] == "Bearer"
    me = await client.get("/users/me", headers=bearer(tokens))
    assert me.json()["id"] == kim["id"]


async def test_weak_password_is_refused_naming_the_rules(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/users", json={"email": "kim@example.com", "name": "Kim", "password": "kim12345"}
    )
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    assert {error["field"] for error in response.json()["errors"]} == {"password"}
    assert "kim12345" not in response.text


async def test_duplicate_email_is_a_conflict(client: httpx.AsyncClient) -> None:
    await register(client, "kim@example.com", "Kim")
    again = await client.post(
        "/users", json={"email": "kim@example.com", "name": "Kim", "password": PASSWORD}
    )
    assert (again.status_code, again.json()["code"]) == (409, "DB_DUPLICATE")


async def test_wrong_password_and_unknown_user_answer_alike(client: httpx.AsyncClient) -> None:
    await register(client, "kim@example.com", "Kim")
    wrong = await client.post("/auth/token", json={"email": "kim@example.com", "password": "x"})
    unknown = await client.post(
        "/auth/token", json={"email": "nobody@example.com", "password": "x"}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["code"] == unknown.json()["code"] == "AUTH_CREDENTIALS_INVALID"


async def test_listing_needs_user_read_and_filters_sorts_and_pages(
    client: httpx.AsyncClient,
) -> None:
    for name in ("Cy", "Al", "Bo"):
        await register(client, f"{name.lower()}@example.com", name)
    user = await login(client, "al@example.com")
    denied = await client.get("/users", headers=bearer(user))
    assert (denied.status_code, denied.json()["code"]) == (403, "AUTH_PERMISSION_DENIED")

    admin = bearer(await login(client, ADMIN["email"], ADMIN["password"]))
    page = await client.get(
        "/users", params={"role": "user", "sort": "name", "size": 2}, headers=admin
    )
    body = page.json()
    assert [u["name"] for u in body["items"]] == ["Al", "Bo"]
    assert (body["total"], body["pages"], body["has_next"]) == (3, 2, True)

    first = await client.get(
        "/users", params={"paging": "cursor", "sort": "name", "size": 2}, headers=admin
    )
    cursor = first.json()["next_cursor"]
    second = await client.get("/users", params={"cursor": cursor, "sort": "name"}, headers=admin)
    names = [u["name"] for u in first.json()["items"] + second.json()["items"]]
    assert names == ["Administrator", "Al", "Bo", "Cy"]
    filtered = await client.get("/users", params={"email": "BO@"}, headers=admin)
    assert [u["name"] for u in filtered.json()["items"]] == ["Bo"]


async def test_reads_are_cached_and_invalidated_on_change(client: httpx.AsyncClient) -> None:
    kim = await register(client, "kim@example.com", "Kim")
    tokens = bearer(await login(client, "kim@example.com"))
    first = await client.get(f"/users/{kim['id']}", headers=tokens)
    second = await client.get(f"/users/{kim['id']}", headers=tokens)
    assert (first.headers["x-cache"], second.headers["x-cache"]) == ("miss", "hit")

    patched = await client.patch(
        f"/users/{kim['id']}", json={"version": 1, "name": "Kim Lee"}, headers=tokens
    )
    assert (patched.status_code, patched.json()["version"]) == (200, 2)
    after = await client.get(f"/users/{kim['id']}", headers=tokens)
    assert (after.headers["x-cache"], after.json()["name"]) == ("miss", "Kim Lee")


async def test_stale_version_is_refused(client: httpx.AsyncClient) -> None:
    kim = await register(client, "kim@example.com", "Kim")
    tokens = bearer(await login(client, "kim@example.com"))
    await client.patch(f"/users/{kim['id']}", json={"version": 1, "name": "A"}, headers=tokens)
    stale = await client.patch(
        f"/users/{kim['id']}", json={"version": 1, "name": "B"}, headers=tokens
    )
    assert (stale.status_code, stale.json()["code"]) == (409, "DB_CONFLICT")


async def test_only_owner_or_admin_may_read_or_change_a_user(client: httpx.AsyncClient) -> None:
    kim = await register(client, "kim@example.com", "Kim")
    await register(client, "bo@example.com", "Bo")
    bo = bearer(await login(client, "bo@example.com"))
    assert (await client.get(f"/users/{kim['id']}", headers=bo)).status_code == 403
    patch = await client.patch(f"/users/{kim['id']}", json={"version": 1, "name": "X"}, headers=bo)
    assert patch.status_code == 403
    kim_tokens = bearer(await login(client, "kim@example.com"))
    promote = await client.patch(
        f"/users/{kim['id']}", json={"version": 1, "role": "admin"}, headers=kim_tokens
    )
    assert (promote.status_code, promote.json()["code"]) == (403, "AUTH_PERMISSION_DENIED")


async def test_delete_is_soft_admin_only_and_published_through_the_outbox(
    app: FastAPI, client: httpx.AsyncClient, transport: InMemoryTransport
) -> None:
    kim = await register(client, "kim@example.com", "Kim")
    kim_tokens = bearer(await login(client, "kim@example.com"))
    own = await client.delete(f"/users/{kim['id']}", headers=kim_tokens)
    assert own.status_code == 403

    admin = bearer(await login(client, ADMIN["email"], ADMIN["password"]))
    assert (await client.get(f"/users/{kim['id']}", headers=admin)).headers["x-cache"] == "miss"
    assert (await client.delete(f"/users/{kim['id']}", headers=admin)).status_code == 204
    gone = await client.get(f"/users/{kim['id']}", headers=admin)
    assert (gone.status_code, gone.json()["code"]) == (404, "NOT_FOUND")
    missing = await client.delete(f"/users/{uuid.uuid4()}", headers=admin)
    assert missing.status_code == 404

    types = await published(app, transport, 3)
    assert types == ["user.created", "user.created", "user.deleted"]  # admin, Kim, Kim


async def test_refresh_rotates_and_a_replayed_refresh_token_revokes_the_login(
    client: httpx.AsyncClient,
) -> None:
    await register(client, "kim@example.com", "Kim")
    tokens = await login(client, "kim@example.com")
    renewed = await client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert renewed.status_code == 200
    replayed = await client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert (replayed.status_code, replayed.json()["code"]) == (401, "AUTH_TOKEN_REVOKED")
    after = await client.get("/users/me", headers=bearer(renewed.json()))
    assert after.status_code == 401


async def test_logout_revokes_the_login(client: httpx.AsyncClient) -> None:
    await register(client, "kim@example.com", "Kim")
    tokens = await login(client, "kim@example.com")
    assert (await client.post("/auth/logout", headers=bearer(tokens))).status_code == 204
    assert (await client.get("/users/me", headers=bearer(tokens))).status_code == 401
    reuse = await client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert reuse.status_code == 401


async def test_service_account_token_reads_users(client: httpx.AsyncClient) -> None:
    kim = await register(client, "kim@example.com", "Kim")
    token = await client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "audience": "aegis", "scope": "user:read"},
        auth=("policy-service", "test-secret-of-policy-service"),
    )
    assert token.status_code == 200, token.text
    read = await client.get(f"/users/{kim['id']}", headers=bearer(token.json()))
    assert read.json()["email"] == "kim@example.com"
    bad = await client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "audience": "aegis"},
        auth=("policy-service", "wrong"),
    )
    assert bad.status_code == 401


async def test_jwks_health_and_metrics_are_public(client: httpx.AsyncClient) -> None:
    jwks = (await client.get("/.well-known/jwks.json")).json()
    assert jwks["keys"][0]["kty"] == "OKP"
    assert "d" not in jwks["keys"][0]
    health = await client.get("/health")
    assert (health.status_code, health.json()["status"]) == (200, "pass")
    assert (await client.get("/health/ready")).status_code == 200
    await client.get("/users/me")
    metrics = await client.get("/metrics")
    assert "aegis_http_requests_total" in metrics.text
    assert (await client.get("/users/me")).headers["www-authenticate"].startswith("Bearer")

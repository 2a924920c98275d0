"""What bootstrap() wires into policy-service: spans, database metrics, encrypted settings."""

import httpx
import policy_service
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from aegis.config import encrypt_value, generate_master_key
from aegis.db import DatabaseSettings
from aegis.msg import InMemoryTransport

pytestmark = pytest.mark.anyio

SECRET = "test-secret-of-policy-service"  # conftest's: user-service knows it
POLICY = {"number": "P-9", "premium": "10.00", "starts_on": "2027-01-01", "status": "active"}


async def sign_in(users: httpx.AsyncClient, email: str, password: str) -> dict[str, str]:
    response = await users.post("/auth/token", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def test_a_policy_written_for_a_holder_fetched_from_user_service(
    users: httpx.AsyncClient,
    users_url: str,
    database_urls: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Spans, query metrics and the encrypted client secret of the call to user-service.

    The app has a transport of its own: no user event reaches it, so the holder is fetched
    from user-service with the service account, whose secret was written ``enc:v1:``.
    """
    monkeypatch.setenv("AEGIS_MASTER_KEY", generate_master_key("test"))
    monkeypatch.setenv("POLICIES_CLIENT_SECRET", encrypt_value(SECRET))
    settings = policy_service.Settings.load(
        database=DatabaseSettings(
            url=SecretStr(database_urls["policies"]), sqlite_transaction_mode="IMMEDIATE"
        ),
        users_url=users_url,
        log=None,
    )
    assert settings.client_secret.get_secret_value() == SECRET
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = policy_service.create_app(
        settings,
        transport=InMemoryTransport(),
        registry=CollectorRegistry(),
        tracer_provider=provider,
    )
    kim = {"email": "kim@example.com", "name": "Kim", "password": "Correct-Horse-Battery-9"}
    kim_id = (await users.post("/users", json=kim)).json()["id"]
    headers = await sign_in(users, "admin@example.com", "Admin-Passw0rd-Test")
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://p") as client,
    ):
        created = await client.post(
            "/policies", json={**POLICY, "holder_id": kim_id}, headers=headers
        )
        anonymous = await client.get("/policies")
        metrics = (await client.get("/metrics")).text
    assert (created.status_code, anonymous.status_code) == (201, 401), created.text
    servers = [span for span in exporter.get_finished_spans() if span.kind is SpanKind.SERVER]
    assert [(span.attributes or {}).get("http.route") for span in servers] == ["/policies"] * 2
    assert 'aegis_db_query_duration_seconds_count{engine="policies",operation="INSERT"}' in metrics

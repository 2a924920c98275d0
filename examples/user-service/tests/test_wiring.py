"""What bootstrap() wires into user-service: spans, database metrics, Sentry, encrypted settings."""

from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import sentry_sdk
from fastapi import FastAPI
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client import CollectorRegistry
from pydantic import SecretStr
from sentry_sdk.envelope import Envelope
from user_service import Settings, create_app

from aegis.config import encrypt_value, generate_master_key
from aegis.db import DatabaseSettings
from aegis.log import LogSettings, configured_logging
from aegis.msg import InMemoryTransport
from aegis.testing import HttpRecorder

pytestmark = pytest.mark.anyio

ADMIN = {"email": "admin@example.com", "password": "Admin-Passw0rd-Wiring"}
CreateTables = Callable[[Mapping[str, str]], object]


def database(url: str) -> DatabaseSettings:
    return DatabaseSettings(url=SecretStr(url), sqlite_transaction_mode="IMMEDIATE")


@asynccontextmanager
async def client_of(app: FastAPI, *, lifespan: bool = True) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        app.router.lifespan_context(app) if lifespan else _nothing(),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
            base_url="http://users",
        ) as http,
    ):
        yield http


@asynccontextmanager
async def _nothing() -> AsyncIterator[None]:
    yield


@pytest.fixture
def users_db(tmp_path: Path, create_tables: CreateTables) -> str:
    url = f"sqlite:///{tmp_path / 'users.db'}"
    create_tables({"users": url, "policies": f"sqlite:///{tmp_path / 'policies.db'}"})
    return url


async def test_each_request_is_one_server_span_and_queries_are_measured(users_db: str) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    registry = CollectorRegistry()
    settings = Settings(
        database=database(users_db), admin_password=SecretStr(ADMIN["password"]), log=None
    )
    app = create_app(
        settings, transport=InMemoryTransport(), registry=registry, tracer_provider=provider
    )
    async with client_of(app) as client:
        login = await client.post("/auth/token", json=ADMIN)
        token = login.json()["access_token"]
        me = await client.get("/users/me", headers={"Authorization": f"Bearer {token}"})
        anonymous = await client.get("/users/me")
        metrics = (await client.get("/metrics")).text
    assert (login.status_code, me.status_code, anonymous.status_code) == (200, 200, 401)
    servers = [span for span in exporter.get_finished_spans() if span.kind is SpanKind.SERVER]
    routes = [(span.attributes or {}).get("http.route") for span in servers]
    assert routes == ["/auth/token", "/users/me", "/users/me"]  # /metrics is quiet
    trace_ids = {span.context.trace_id for span in servers if span.context is not None}
    assert len(trace_ids) == len(servers)
    # instrument_engine: the queries of the login and of /users/me, by operation
    assert 'aegis_db_query_duration_seconds_count{engine="users",operation="SELECT"}' in metrics


async def test_an_encrypted_admin_password_is_decrypted_at_load(
    users_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AEGIS_MASTER_KEY", generate_master_key("test"))
    monkeypatch.setenv("USERS_ADMIN_PASSWORD", encrypt_value(ADMIN["password"]))
    settings = Settings.load(database=database(users_db), log=None)
    assert settings.admin_password.get_secret_value() == ADMIN["password"]
    app = create_app(settings, transport=InMemoryTransport(), registry=CollectorRegistry())
    async with client_of(app) as client:
        login = await client.post("/auth/token", json=ADMIN)
    assert login.status_code == 200, login.text


@pytest.fixture
def sentry_endpoint() -> Iterator[tuple[str, HttpRecorder]]:
    """A local HTTP server standing in for Sentry: its DSN, and the server (``.bodies``)."""
    with HttpRecorder() as sentry:
        yield f"http://public-key@{sentry.address}/42", sentry


async def test_with_a_sentry_dsn_an_unhandled_error_reaches_sentry_masked(
    tmp_path: Path, sentry_endpoint: tuple[str, HttpRecorder]
) -> None:
    dsn, sentry = sentry_endpoint
    # A database without the tables: the sign-up's INSERT fails, an unhandled error (500).
    settings = Settings(
        database=database(f"sqlite:///{tmp_path / 'empty.db'}"),
        log=LogSettings(console=None),
        sentry_dsn=SecretStr(dsn),
        version="1.0.0",
    )
    with configured_logging(LogSettings(console=None)):
        try:
            app = create_app(settings, transport=InMemoryTransport(), registry=CollectorRegistry())
            async with client_of(app, lifespan=False) as client:
                signup = {"email": "kim@example.com", "name": "Kim", "password": "Lantern-7-Harbor"}
                answer = await client.post(
                    "/users", json=signup, headers={"X-Request-ID": "signup-1"}
                )
            sentry_sdk.flush(timeout=5)
        finally:
            sentry_sdk.get_client().close()
    assert answer.status_code == 500, answer.text
    assert answer.json()["request_id"] == "signup-1"
    bodies = sentry.bodies  # read after the flush: .bodies is what had arrived when read
    events = [
        item.payload.json
        for body in bodies
        for item in Envelope.deserialize(body).items
        if item.type == "event" and item.payload.json is not None
    ]
    assert len(events) == 1, events
    event = events[0]
    assert event["release"] == "user-service@1.0.0"
    assert "signup-1" in str(event)
    assert "Lantern-7-Harbor" not in str(bodies)

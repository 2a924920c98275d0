from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from pydantic import SecretStr
from user_service import Settings, create_app

from aegis.db import DatabaseSettings
from aegis.msg import InMemoryTransport

CreateTables = Callable[[Mapping[str, str]], object]
"""examples/conftest.py's ``create_tables``: the tables through aegis-schema's coordinator."""

ADMIN = {"email": "admin@example.com", "password": "Admin-Passw0rd-Test"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def transport() -> InMemoryTransport:
    return InMemoryTransport()


@pytest.fixture
async def app(
    tmp_path: Path, transport: InMemoryTransport, create_tables: CreateTables
) -> AsyncIterator[FastAPI]:
    url = f"sqlite:///{tmp_path / 'users.db'}"
    create_tables({"users": url, "policies": f"sqlite:///{tmp_path / 'policies.db'}"})
    settings = Settings(
        database=DatabaseSettings(url=SecretStr(url), sqlite_transaction_mode="IMMEDIATE"),
        admin_email=ADMIN["email"],
        admin_password=SecretStr(ADMIN["password"]),
        policy_service_secret=SecretStr("test-secret-of-policy-service"),
        log=None,  # pytest owns logging
    )
    application = create_app(settings, transport=transport, registry=CollectorRegistry())
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://users"
    ) as http:
        yield http

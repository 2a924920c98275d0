import asyncio
import socket
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

import httpx
import policy_service
import pytest
import user_service
import uvicorn
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from aegis.db import DatabaseSettings
from aegis.msg import InMemoryTransport

SECRET = SecretStr("test-secret-of-policy-service")

CreateTables = Callable[[Mapping[str, str]], object]
"""examples/conftest.py's ``create_tables``: the tables through aegis-schema's coordinator."""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def transport() -> InMemoryTransport:
    return InMemoryTransport()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def database_urls(tmp_path: Path, create_tables: CreateTables) -> dict[str, str]:
    """A SQLite file per service, with the tables of examples/schemas."""
    urls = {service: f"sqlite:///{tmp_path / f'{service}.db'}" for service in ("users", "policies")}
    create_tables(urls)
    return urls


@pytest.fixture
def revocations() -> dict[str, Any]:
    """Settings both services get for shared revocations: none (test_revocation.py has Redis)."""
    return {}


@pytest.fixture
async def users_url(
    transport: InMemoryTransport, database_urls: dict[str, str], revocations: dict[str, Any]
) -> AsyncIterator[str]:
    """user-service on a real socket: policy-service reaches its JWKS and API over HTTP."""
    port = free_port()
    app = user_service.create_app(
        user_service.Settings(
            **revocations,
            port=port,
            database=DatabaseSettings(
                url=SecretStr(database_urls["users"]), sqlite_transaction_mode="IMMEDIATE"
            ),
            admin_password=SecretStr("Admin-Passw0rd-Test"),
            policy_service_secret=SECRET,
            log=None,  # pytest owns logging
        ),
        transport=transport,
        registry=CollectorRegistry(),
    )
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None))
    task = asyncio.create_task(server.serve())
    while not server.started:  # uvicorn offers no event to await
        assert not task.done(), "user-service did not start"
        await asyncio.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await task


@pytest.fixture
async def policies(
    transport: InMemoryTransport,
    users_url: str,
    database_urls: dict[str, str],
    revocations: dict[str, Any],
) -> AsyncIterator[FastAPI]:
    app = policy_service.create_app(
        policy_service.Settings(
            **revocations,
            database=DatabaseSettings(
                url=SecretStr(database_urls["policies"]), sqlite_transaction_mode="IMMEDIATE"
            ),
            users_url=users_url,
            client_secret=SECRET,
            log=None,
        ),
        transport=transport,
        registry=CollectorRegistry(),
    )
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def client(policies: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=policies), base_url="http://policies"
    ) as http:
        yield http


@pytest.fixture
async def users(users_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=users_url) as http:
        yield http

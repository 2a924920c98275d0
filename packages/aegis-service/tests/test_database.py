"""bootstrap() with a database: each request is a read-your-writes scope when replicas exist."""

from __future__ import annotations

import pytest
from pydantic import SecretStr
from starlette.applications import Starlette

from aegis.db import DatabaseSettings, ReadYourWritesMiddleware
from aegis.service import ServiceSettings, bootstrap


@pytest.mark.parametrize(("replicas", "installed"), [(1, True), (0, False)])
def test_read_your_writes_per_request_is_installed_with_read_replicas(
    postgres_database: str, replicas: int, installed: bool
) -> None:
    url = postgres_database.replace("postgresql://", "postgresql+asyncpg://", 1)
    database = DatabaseSettings(
        url=SecretStr(url), read_replica_urls=tuple(SecretStr(url) for _ in range(replicas))
    )
    app = Starlette()
    bootstrap(app, ServiceSettings(name="orders", log=None, database=database))

    classes: list[object] = [middleware.cls for middleware in app.user_middleware]
    assert (ReadYourWritesMiddleware in classes) is installed

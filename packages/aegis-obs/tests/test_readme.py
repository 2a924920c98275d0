"""The README's examples run as written, against real services."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from starlette.types import ASGIApp

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()
Client = Callable[[ASGIApp], httpx.AsyncClient]


def block(heading: str) -> str:
    """The first python block after the heading."""
    section = README.split(f"## {heading}\n", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None
    return match.group(1)


@pytest.mark.anyio
async def test_quick_start_serves_orders_health_and_metrics(
    postgres_database: str, redis_url: str, kafka_bootstrap: str, client: Client
) -> None:
    namespace: dict[str, object] = {
        "DATABASE_URL": postgres_database.replace("postgresql://", "postgresql+psycopg://", 1),
        "REDIS_URL": redis_url,
        "KAFKA_BOOTSTRAP": kafka_bootstrap,
    }
    exec(block("Quick start"), namespace)  # noqa: S102 (the README's own code)
    app = namespace["app"]
    async with client(app) as http:  # type: ignore[arg-type]
        assert (await http.get("/orders/7")).json() == {"id": 7}
        health = await http.get("/health")
        metrics = (await http.get("/metrics")).text
    assert health.status_code == 200
    assert health.json()["status"] == "pass"
    assert set(health.json()["checks"]) == {
        "postgres:responseTime",
        "redis:responseTime",
        "kafka:responseTime",
        "disk:responseTime",
    }
    assert 'aegis_http_requests_total{method="GET",route="/orders/{order_id}",status="200"}' in (
        metrics
    )
    assert 'aegis_db_query_duration_seconds_count{engine="default",operation="SELECT"}' in metrics
    await namespace["engine"].dispose()  # type: ignore[attr-defined]


def test_declaring_your_own_metrics_example_runs_twice() -> None:
    for _ in range(2):  # a re-import declares the same metrics again
        namespace: dict[str, object] = {}
        exec(block("Declaring your own metrics"), namespace)  # noqa: S102
        namespace["create_order"]()  # type: ignore[operator]

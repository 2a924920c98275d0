"""HealthRegistry: aggregation, timeouts, failures, caching, and the three endpoints."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.types import ASGIApp

from aegis.core.errors import ConfigurationError
from aegis.obs import (
    HEALTH_JSON,
    HealthCheckError,
    HealthRegistry,
    HealthStatus,
    disk_space_check,
    health_routes,
    http_check,
)

Client = Callable[[ASGIApp], httpx.AsyncClient]
pytestmark = pytest.mark.anyio


async def ok() -> None:
    return None


async def broken() -> None:
    raise ConnectionRefusedError("connect to postgresql://app:hunter2@db:5432/main refused")


async def hangs() -> None:
    await asyncio.Event().wait()


async def test_all_checks_up_is_up() -> None:
    health = HealthRegistry()
    health.add("db", ok)
    health.add("cache", ok, critical=False)
    report = await health.run()
    assert report.status is HealthStatus.UP
    assert report.http_status == 200
    assert [result.name for result in report.checks] == ["db", "cache"]
    assert health.names == ("db", "cache")


async def test_critical_down_is_down_and_non_critical_down_is_degraded() -> None:
    degraded = HealthRegistry()
    degraded.add("db", ok)
    degraded.add("search", broken, critical=False)
    assert (await degraded.run()).status is HealthStatus.DEGRADED
    assert (await degraded.run()).http_status == 200
    down = HealthRegistry()
    down.add("db", broken)
    down.add("search", broken, critical=False)
    report = await down.run()
    assert report.status is HealthStatus.DOWN
    assert report.http_status == 503


async def test_a_raising_check_is_down_with_its_error_and_secrets_masked() -> None:
    health = HealthRegistry()
    health.add("db", broken)
    (result,) = (await health.run()).checks
    assert result.status is HealthStatus.DOWN
    assert result.error is not None
    assert result.error.startswith("ConnectionRefusedError: connect to postgresql://app:***@")
    assert "hunter2" not in result.error


async def test_a_check_answering_false_is_down_and_one_answering_true_is_up() -> None:
    async def answers(value: bool) -> bool:
        return value

    health = HealthRegistry()
    health.add("redis", lambda: answers(False))
    health.add("flag", lambda: answers(True), critical=False)
    report = await health.run()
    assert report.status is HealthStatus.DOWN
    redis, flag = report.checks
    assert (redis.status, redis.error) == (HealthStatus.DOWN, "the check answered False")
    assert (flag.status, flag.details) == (HealthStatus.UP, {})


async def test_a_hanging_check_is_down_after_its_timeout_and_others_still_answer() -> None:
    health = HealthRegistry()
    health.add("stuck", hangs, timeout=0.05)
    health.add("db", ok)
    report = await health.run()
    stuck, db = report.checks
    assert stuck.status is HealthStatus.DOWN
    assert stuck.error == "timed out after 0.05 s"  # the timeout, not the check, ended it
    assert db.status is HealthStatus.UP


async def test_results_are_cached_and_concurrent_probes_share_one_run() -> None:
    calls = 0
    release = asyncio.Event()

    async def counted_check() -> dict[str, int]:
        nonlocal calls
        calls += 1
        await release.wait()
        return {"calls": calls}

    health = HealthRegistry(cache_seconds=60)
    health.add("db", counted_check)
    probes = [asyncio.create_task(health.run()) for _ in range(20)]
    await asyncio.sleep(0)
    release.set()
    reports = await asyncio.gather(*probes)
    again = await health.run()
    assert calls == 1
    assert {report.checks[0].details["calls"] for report in [*reports, again]} == {1}


async def test_without_caching_each_run_checks_again() -> None:
    calls = 0

    async def counted_check() -> None:
        nonlocal calls
        calls += 1

    health = HealthRegistry(cache_seconds=0)
    health.add("db", counted_check)
    await health.run()
    await health.run()
    assert calls == 2


async def test_critical_only_runs_only_critical_checks() -> None:
    health = HealthRegistry()
    health.add("db", ok)
    health.add("search", broken, critical=False)
    report = await health.run(critical_only=True)
    assert [result.name for result in report.checks] == ["db"]
    assert report.status is HealthStatus.UP


def test_bad_registrations_are_refused() -> None:
    health = HealthRegistry()
    health.add("db", ok)
    with pytest.raises(ConfigurationError, match="already added"):
        health.add("db", ok)
    with pytest.raises(ConfigurationError, match="timeout must be > 0"):
        health.add("cache", ok, timeout=0)
    with pytest.raises(ConfigurationError, match="cache_seconds >= 0"):
        HealthRegistry(cache_seconds=-1)


async def test_endpoints_answer_health_json_with_the_right_status(client: Client) -> None:
    health = HealthRegistry()
    health.add("db", ok)
    health.add("search", broken, critical=False)
    app = Starlette(routes=health_routes(health, service_id="orders", version="1.2.0"))
    async with client(app) as http:
        full = await http.get("/health")
        ready = await http.get("/health/ready")
        live = await http.get("/health/live")
    assert full.status_code == 200
    assert full.headers["content-type"] == HEALTH_JSON
    assert full.headers["cache-control"] == "no-store"
    document = full.json()
    assert document["status"] == "warn"
    assert document["serviceId"] == "orders"
    assert document["version"] == "1.2.0"
    (search,) = document["checks"]["search:responseTime"]
    assert search["status"] == "fail"
    assert search["critical"] is False
    assert search["observedUnit"] == "ms"
    assert search["time"].endswith("Z")
    assert "***" in search["output"]
    assert ready.status_code == 200
    assert list(ready.json()["checks"]) == ["db:responseTime"]
    assert live.json() == {"status": "pass"}


async def test_critical_failure_makes_health_and_ready_503_but_live_200(client: Client) -> None:
    health = HealthRegistry()
    health.add("db", hangs, timeout=0.01)
    app = Starlette(routes=health_routes(health, path="/status"))
    async with client(app) as http:
        assert (await http.get("/status")).status_code == 503
        ready = await http.get("/status/ready")
        assert (await http.get("/status/live")).status_code == 200
    assert ready.status_code == 503
    assert ready.json()["status"] == "fail"


async def test_disk_space_check_reports_free_space_and_fails_below_the_floor(
    tmp_path: Path,
) -> None:
    health = HealthRegistry()
    health.add("disk", disk_space_check(tmp_path, min_free_ratio=0))
    health.add("full", disk_space_check(tmp_path, min_free_bytes=2**62))
    disk, full = (await health.run()).checks
    assert disk.status is HealthStatus.UP
    assert disk.details["free_bytes"] > 0
    assert full.status is HealthStatus.DOWN
    assert full.error is not None
    assert full.error.startswith("HealthCheckError:")


async def test_http_check_accepts_expected_statuses_only() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200 if request.url.path == "/ok" else 500)

    client = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    health = HealthRegistry()
    health.add("up", http_check("http://dep/ok", client=client))
    health.add("down", http_check("http://dep/err", client=client))
    up, down = (await health.run()).checks
    await client.aclose()
    assert up.details == {"status_code": 200}
    assert down.error == "HealthCheckError: GET http://dep/err answered 500"


def test_health_check_error_has_a_stable_code() -> None:
    error = HealthCheckError("disk full")
    assert (error.code, error.status) == ("HEALTH_CHECK_FAILED", 503)

"""Multiprocess mode: two uvicorn workers share PROMETHEUS_MULTIPROC_DIR and their counts add up."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

APP = """
import os

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from aegis.obs import ObservabilityMiddleware, metrics_route


async def pid(request):
    return PlainTextResponse(str(os.getpid()))


app = Starlette(
    routes=[Route("/pid/{n}", pid), metrics_route()],
    middleware=[Middleware(ObservabilityMiddleware)],
)
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture
def two_workers(tmp_path: Path) -> Iterator[str]:
    """Base URL of `uvicorn --workers 2` serving APP in multiprocess mode."""
    (tmp_path / "obs_multiprocess_app.py").write_text(APP)
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "obs_multiprocess_app:app", "--workers", "2",
         "--host", "127.0.0.1", "--port", str(port), "--app-dir", str(tmp_path),
         "--no-access-log"],
        env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)},
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert server.stderr is not None
        started = 0
        log: list[str] = []
        while started < 2:
            line = server.stderr.readline()
            assert line, f"uvicorn exited early: {''.join(log)}"
            log.append(line)
            started += "Application startup complete" in line
        yield f"http://127.0.0.1:{port}"
    finally:
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=30)


def test_two_workers_counts_add_up_in_one_scrape(two_workers: str) -> None:
    served_by: dict[str, int] = {}
    sent = 0
    # A new connection per request lets either worker accept it; stop once both have served.
    while (len(served_by) < 2 or sent < 20) and sent < 2000:
        response = httpx.get(f"{two_workers}/pid/{sent}", headers={"Connection": "close"})
        served_by[response.text] = served_by.get(response.text, 0) + 1
        sent += 1
    assert len(served_by) == 2, "one worker served every request"
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(httpx.get(f"{two_workers}/metrics").text)
        for sample in family.samples
    }
    labels = (("method", "GET"), ("route", "/pid/{n}"), ("status", "200"))
    assert samples[("aegis_http_requests_total", labels)] == sent
    duration = ("aegis_http_request_duration_seconds_count", labels[:2])
    assert samples[duration] == sent
    assert samples[("aegis_http_requests_in_progress", labels[:2])] == 0
    assert sum(served_by.values()) == sent

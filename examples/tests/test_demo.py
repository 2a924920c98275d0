"""`./dev demo` end to end: the services as real processes, the walkthrough over real HTTP."""

import socket
import subprocess
import sys
from pathlib import Path

DEMO = Path(__file__).resolve().parents[1] / "demo.py"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def run_demo(*args: str) -> subprocess.CompletedProcess[str]:
    ports = ["--users-port", str(free_port()), "--policies-port", str(free_port())]
    return subprocess.run(
        [sys.executable, str(DEMO), *ports, *args],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def assert_walkthrough_passed(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    steps = [line for line in lines if line.startswith("[")]
    assert len(steps) == 19
    assert all(line.startswith("[ok  ]") for line in steps)
    assert lines[-1] == "demo: 19/19 steps passed: every step behaved"
    for shown in (
        "403 AUTH_PERMISSION_DENIED",
        "422 POLICY_HOLDER_UNKNOWN",
        "X-Cache miss then hit",
        "Alice's policy cancelled",
        "409 POLICY_HOLDER_DELETED",
        "401 AUTH_TOKEN_REVOKED reason=reused",
        "aegis_http_requests_total",
    ):
        assert shown in result.stdout


def test_demo_passes_on_the_embedded_defaults_in_one_process() -> None:
    assert_walkthrough_passed(run_demo())


def test_demo_passes_with_each_service_a_process_on_postgres_redis_and_kafka(
    postgres_database: str, redis_url: str, kafka_bootstrap: str
) -> None:
    result = run_demo(
        "--real",
        "--postgres-url",
        postgres_database,
        "--redis-url",
        redis_url,
        "--kafka-bootstrap",
        kafka_bootstrap,
    )
    assert_walkthrough_passed(result)

"""`./dev demo` end to end: the services as real processes, the walkthrough over real HTTP."""

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from aegis.testing import PostgresReplicaTopology, RedisClusterTopology

DEMO = Path(__file__).resolve().parents[1] / "demo.py"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def run_demo(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    ports = ["--users-port", str(free_port()), "--policies-port", str(free_port())]
    return subprocess.run(
        [sys.executable, str(DEMO), *ports, *args],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        env={**os.environ, **(env or {})},
    )


def assert_walkthrough_passed(output: str, steps: int) -> None:
    lines = output.splitlines()
    shown = [line for line in lines if line.startswith("[")]
    assert len(shown) == steps, output
    assert all(line.startswith("[ok  ]") for line in shown), output
    assert f"demo: {steps}/{steps} steps passed: every step behaved" in lines
    for text in (
        "403 AUTH_PERMISSION_DENIED",
        "422 POLICY_HOLDER_UNKNOWN",
        "X-Cache miss then hit",
        "Alice's policy cancelled",
        "409 POLICY_HOLDER_DELETED",
        "401 AUTH_TOKEN_REVOKED reason=reused",
        "aegis_http_requests_total",
        "logout on user-service is honoured by policy-service: 200 before, 204 logout, 401 within",
    ):
        assert text in output


def test_demo_passes_on_the_embedded_defaults_in_one_process() -> None:
    result = run_demo()
    assert result.returncode == 0, result.stdout + result.stderr
    assert_walkthrough_passed(result.stdout, steps=20)
    assert result.stdout.splitlines()[-1] == "demo: 20/20 steps passed: every step behaved"


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def test_real_demo_passes_then_ctrl_c_stops_every_server_it_started(
    postgres_database: str, redis_url: str
) -> None:
    users, policies = free_port(), free_port()
    options = {
        "--users-port": str(users),
        "--policies-port": str(policies),
        "--postgres-url": postgres_database,
        "--redis-url": redis_url,
    }
    demo = subprocess.Popen(
        [sys.executable, str(DEMO), "--real", "--serve", *(x for o in options.items() for x in o)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert demo.stdout is not None
    lines: list[str] = []
    try:
        for line in demo.stdout:  # ends at "serving until Ctrl-C", or when the demo dies
            lines.append(line)
            if line.startswith("serving until Ctrl-C"):
                break
        # Each service a process on PostgreSQL, Redis and the demo's own Kafka broker, which
        # the outage step stops and restarts empty.
        assert_walkthrough_passed("".join(lines), steps=21)
        assert "events resume after a broker restart (empty): Carol's policy cancelled" in (
            "".join(lines)
        )
        broker = next(line.split()[3] for line in lines if "embedded broker" in line)
        broker_port = int(broker.rpartition(":")[2])
        assert not port_is_free(broker_port), "".join(lines)
        demo.send_signal(signal.SIGINT)
        assert demo.wait(timeout=60) == 0
    finally:
        demo.kill()
        demo.wait()
        demo.stdout.close()
    assert all(port_is_free(port) for port in (broker_port, users, policies)), "".join(lines)


@pytest.mark.scaleout
def test_demo_passes_on_a_postgres_replica_and_a_redis_cluster(
    postgres_replica: PostgresReplicaTopology,
    redis_cluster: RedisClusterTopology,
    kafka_bootstrap: str,
) -> None:
    """The session's topologies, named as ``./dev services up --topology`` names them."""
    result = run_demo(
        "--topology",
        "postgres-replica",
        "--topology",
        "redis-cluster",
        env={
            **postgres_replica.environment(),
            **redis_cluster.environment(),
            "AEGIS_TEST_KAFKA_BOOTSTRAP": kafka_bootstrap,  # no broker of its own to restart
        },
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert_walkthrough_passed(result.stdout, steps=26)
    for text in (
        "primary and streaming replica: the running one named by AEGIS_TEST_POSTGRES_REPLICA_URL",
        f"redis-cluster {redis_cluster.url}: the running one named by",
        "the client that created Dave lists him at once: 201, ['Dave'] (read on the primary",
        "another client reads the lagging replica: []",
        "replay resumed: the other client finds Dave on the replica",
        "user-service reads on the replica: replica=",
        "user-service's rate limit kept on redis-cluster",
        "the revocations' on 1 (hash tag {users:})",
    ):
        assert text in result.stdout, result.stdout

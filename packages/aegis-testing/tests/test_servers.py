"""Starting and stopping embedded servers directly, outside pytest fixtures."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import psycopg
import pytest
import redis
from confluent_kafka.admin import AdminClient

from aegis.testing import EmbeddedServer, RestartableServer, ServiceStartError, start_server


def test_embedded_postgres_answers_sql_and_leaves_nothing_after_stop(
    server_gone: Callable[[str], bool],
) -> None:
    server = start_server("postgres")
    try:
        with psycopg.connect(server.url) as connection:
            row = connection.execute("SELECT current_setting('server_version_num')::int").fetchone()
        assert row is not None
        assert row[0] >= 180000
        assert server.data_dir in server.url  # the socket lives with the data
        assert not server_gone(server.url)
    finally:
        server.stop()
    assert not server.is_running()
    assert server_gone(server.url)


def test_embedded_redis_set_get_then_stop_closes_port(server_gone: Callable[[str], bool]) -> None:
    server = start_server("redis")
    try:
        with redis.Redis.from_url(server.url) as client:
            client.set("greeting", "hello")
            assert client.get("greeting") == b"hello"
    finally:
        server.stop()
    assert not server.is_running()
    assert server_gone(server.url)
    assert not Path(server.data_dir).exists()


def test_embedded_kafka_serves_metadata_and_record_round_trips_through_json(
    server_gone: Callable[[str], bool],
) -> None:
    server = start_server("kafka")
    try:
        metadata = AdminClient({"bootstrap.servers": server.url}).list_topics(timeout=10)
        assert len(metadata.brokers) == 1
        copy = EmbeddedServer.from_json(server.to_json())
        assert copy == server
        assert copy.is_running()
    finally:
        server.stop()
    assert server_gone(server.url)
    server.stop()  # a second stop is harmless


def test_server_that_fails_to_start_reports_command_and_log_tail(
    failing_tansu: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CALF_TANSU_BIN", str(failing_tansu))
    with pytest.raises(ServiceStartError) as caught:
        start_server("kafka")
    message = str(caught.value)
    assert "embedded kafka server failed to start: exited with status 3" in message
    assert f"command: {failing_tansu} broker --listener-url tcp://127.0.0.1:" in message
    assert "tansu: cannot bind listener: address in use" in message


def test_missing_broker_binary_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CALF_TANSU_BIN", str(tmp_path / "nowhere"))
    with pytest.raises(ServiceStartError, match="kafka: no Tansu broker binary"):
        start_server("kafka")


def test_stale_record_of_a_recycled_pid_is_not_running(tmp_path: Path) -> None:
    server = start_server("redis")
    try:
        impostor = EmbeddedServer(
            kind="redis",
            url=server.url,
            pid=server.pid,
            started_at=server.started_at - 1000,
            data_dir=str(tmp_path / "gone"),
            log_file=str(tmp_path / "gone.log"),
        )
        assert not impostor.is_running()
        impostor.stop()  # must not kill the process that now owns the pid
        assert server.is_running()
    finally:
        server.stop()


def test_restartable_server_comes_back_empty_at_the_same_address(
    server_gone: Callable[[str], bool],
) -> None:
    with RestartableServer("redis") as server:
        url = server.url
        with redis.Redis.from_url(url) as client:
            client.set("k", "v")
        server.stop()
        assert server_gone(url)
        server.start()
        assert server.url == url
        with redis.Redis.from_url(url) as client:
            assert client.get("k") is None
    assert server_gone(url)


def test_embedded_postgres_takes_no_port() -> None:
    with pytest.raises(ValueError, match="unix socket only"):
        start_server("postgres", port=5432)
    with pytest.raises(ValueError, match="PostgreSQL has no port"):
        RestartableServer("postgres")


def test_a_server_started_from_a_worker_thread_outlives_that_thread() -> None:
    # The parent-death signal is per thread: a server (re)started by anyio.to_thread or
    # asyncio.to_thread must not die when the idle worker thread is retired.
    server = RestartableServer("redis")
    worker = threading.Thread(target=server.start)
    worker.start()
    worker.join()
    try:
        client = redis.Redis.from_url(server.url, socket_timeout=5)
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:  # a SIGTERM from the thread's exit would land now
            assert client.ping()
            time.sleep(0.1)
        client.close()
    finally:
        server.stop()


_PARENT = """
import subprocess, sys, time
from aegis.testing import die_with_parent
child = subprocess.Popen(
    [sys.executable, "-c", "import time; time.sleep(120)"], preexec_fn=die_with_parent()
)
print(child.pid, flush=True)
time.sleep(120)
"""


def test_a_child_started_with_die_with_parent_ends_when_its_parent_is_killed() -> None:
    with subprocess.Popen(
        [sys.executable, "-c", _PARENT], stdout=subprocess.PIPE, text=True
    ) as parent:
        assert parent.stdout is not None
        child = psutil.Process(int(parent.stdout.readline()))
        parent.kill()  # SIGKILL: no cleanup of its own runs
        parent.wait(10)
    try:
        child.wait(10)  # not our child: psutil reports its end, not its status
    except psutil.TimeoutExpired:
        child.kill()
        pytest.fail("the child outlived its killed parent")

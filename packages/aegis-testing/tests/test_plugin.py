"""The plugin in a separate pytest run: embedded servers start, answer, and leave nothing behind."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

ROUND_TRIPS = """
import json, os
import psycopg, redis
from confluent_kafka import Consumer, Producer

def test_round_trip_on_every_server(
    postgres_url, postgres_database, redis_url, redis_prefix,
    kafka_bootstrap, kafka_topic, kafka_consumer_config,
):
    with psycopg.connect(postgres_database) as connection:
        assert connection.execute("SELECT 6 * 7").fetchone() == (42,)
    with redis.Redis.from_url(redis_url) as client:
        client.set(redis_prefix + "k", "v")
        assert client.get(redis_prefix + "k") == b"v"
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    producer.produce(kafka_topic, b"ping")
    assert producer.flush(10) == 0
    consumer = Consumer(kafka_consumer_config)
    consumer.subscribe([kafka_topic])
    message = None
    for _ in range(60):
        message = consumer.poll(0.5)
        if message is not None and not message.error():
            break
    consumer.commit(message, asynchronous=False)
    consumer.close()
    assert message.value() == b"ping"
    with open(os.environ["URLS_FILE"], "w") as out:
        json.dump([postgres_url, redis_url, kafka_bootstrap], out)
"""

INTERRUPTED = """
import json, os, signal

def test_killed_midway(postgres_url, redis_url, kafka_bootstrap):
    with open(os.environ["URLS_FILE"], "w") as out:
        json.dump([postgres_url, redis_url, kafka_bootstrap], out)
    os.kill(os.getpid(), signal.SIGTERM)

def test_never_reached():
    pass
"""


@pytest.fixture
def embedded_run(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[[str], tuple[pytest.RunResult, list[str]]]:
    """Run ``source`` as a test file in a fresh pytest process forced onto embedded servers."""
    urls_file = tmp_path / "urls.json"
    monkeypatch.setenv("AEGIS_TEST_SERVICES", "embedded")
    monkeypatch.setenv("URLS_FILE", str(urls_file))

    def run(source: str) -> tuple[pytest.RunResult, list[str]]:
        pytester.makepyfile(test_inner=source)
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=180)
        urls = json.loads(urls_file.read_text()) if urls_file.exists() else []
        return result, urls

    return run


def test_embedded_servers_serve_a_session_and_are_gone_after_it(
    embedded_run: Callable[[str], tuple[pytest.RunResult, list[str]]],
    server_gone: Callable[[str], bool],
) -> None:
    result, urls = embedded_run(ROUND_TRIPS)
    result.assert_outcomes(passed=1)
    assert len(urls) == 3
    assert all(server_gone(url) for url in urls)


def test_sigterm_still_stops_every_server(
    embedded_run: Callable[[str], tuple[pytest.RunResult, list[str]]],
    server_gone: Callable[[str], bool],
) -> None:
    result, urls = embedded_run(INTERRUPTED)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*KeyboardInterrupt*"])
    assert len(urls) == 3
    assert all(server_gone(url) for url in urls)


def test_server_that_cannot_start_fails_the_session_with_its_log(
    embedded_run: Callable[[str], tuple[pytest.RunResult, list[str]]],
    failing_tansu: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CALF_TANSU_BIN", str(failing_tansu))
    result, _ = embedded_run("def test_needs_kafka(kafka_bootstrap):\n    pass\n")
    assert result.ret == pytest.ExitCode.INTERNAL_ERROR
    result.stdout.fnmatch_lines(
        [
            "*embedded kafka server failed to start: exited with status 3*",
            f"*command: {failing_tansu} broker*",
            "*tansu: cannot bind listener: address in use*",
        ]
    )
    result.stdout.no_fnmatch_line("*skipped*")
    result.stdout.no_fnmatch_line("*1 passed*")


def test_configured_server_that_does_not_answer_fails_the_session(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AEGIS_TEST_SERVICES", raising=False)
    monkeypatch.setenv("AEGIS_TEST_REDIS_URL", "redis://:hunter2@127.0.0.1:1/0")
    pytester.makepyfile("def test_needs_redis(redis_url):\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.INTERNAL_ERROR
    result.stdout.fnmatch_lines(
        ["*AEGIS_TEST_REDIS_URL=redis://:***@127.0.0.1:1/0 is set, but that redis server*"]
    )
    result.stdout.no_fnmatch_line("*hunter2*")

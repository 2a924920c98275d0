"""``aegis-testing services``: servers that outlive the command, for shells and other tools."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from aegis.testing import URL_VARIABLES, EmbeddedServer, check_service, terminal_stderr
from aegis.testing._cli import main

STAMP = r"\s*\d+\.\ds  "  # the seconds since the command began, leading each progress line


def _cli(*args: str, on_terminal: bool = False) -> subprocess.CompletedProcess[str]:
    """The installed command; standard error a pipe, or ``sys.stderr`` (``terminal_stderr``)."""
    executable = shutil.which("aegis-testing", path=str(Path(sys.executable).parent))
    assert executable is not None
    stderr = sys.stderr if on_terminal else subprocess.PIPE
    return subprocess.run(
        [executable, *args], stdout=subprocess.PIPE, stderr=stderr, text=True, check=False
    )


def _exports(stdout: str) -> dict[str, str]:
    pairs = [shlex.split(line.removeprefix("export "))[0] for line in stdout.splitlines()]
    return dict(pair.split("=", 1) for pair in pairs)


def test_services_up_outlives_the_command_until_down(
    tmp_path: Path, server_gone: Callable[[str], bool]
) -> None:
    state = str(tmp_path / "services.jsonl")
    up = _cli("services", "up", "--state-file", state)
    assert up.returncode == 0, up.stderr
    exports = _exports(up.stdout)
    assert sorted(exports) == sorted(URL_VARIABLES.values())
    try:
        assert up.stderr == ""  # standard error is a pipe: no progress lines
        for kind, variable in URL_VARIABLES.items():
            check_service(kind, exports[variable])  # the command has exited; servers answer
        again = _cli("services", "up", "--state-file", state)
        assert _exports(again.stdout) == exports  # idempotent: same servers, no new ones
        status = _cli("services", "status", "--state-file", state)
        assert status.returncode == 0
        assert status.stdout.count(" running ") == 3
    finally:
        down = _cli("services", "down", "--state-file", state)
    assert down.returncode == 0
    assert all(server_gone(url) for url in exports.values())
    assert not Path(state).exists()
    assert _cli("services", "status", "--state-file", state).stderr.startswith("no servers")


def test_services_up_on_a_terminal_shows_each_server_starting_and_healthy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = str(tmp_path / "services.jsonl")
    with terminal_stderr() as terminal:
        assert main(["services", "up", "redis", "--state-file", state]) == 0
    try:
        starting, healthy = terminal.lines()
        assert re.fullmatch(f"{STAMP}embedded redis starting \\.\\.\\.", starting), starting
        assert re.fullmatch(f"{STAMP}embedded redis healthy in \\d+\\.\\d\\ds", healthy)
        pid = EmbeddedServer.from_json(Path(state).read_text()).pid
        with terminal_stderr() as terminal:
            assert main(["services", "up", "redis", "--state-file", state]) == 0
        (again,) = terminal.lines()
        assert re.fullmatch(f"{STAMP}redis already running \\(pid {pid}\\)", again), again
        assert capsys.readouterr().out.startswith("export AEGIS_TEST_REDIS_URL=")
    finally:
        assert main(["services", "down", "--state-file", state]) == 0


def test_status_fails_when_a_recorded_server_died(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "services.jsonl"
    assert main(["services", "up", "redis", "--state-file", str(state)]) == 0
    capsys.readouterr()
    EmbeddedServer.from_json(state.read_text()).stop()
    assert main(["services", "status", "--state-file", str(state)]) == 1
    assert "not running" in capsys.readouterr().out
    assert main(["services", "down", "--state-file", str(state)]) == 0


def test_up_reports_a_server_that_cannot_start(
    tmp_path: Path,
    failing_tansu: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("CALF_TANSU_BIN", str(failing_tansu))
    assert main(["services", "up", "kafka", "--state-file", str(tmp_path / "s.jsonl")]) == 1
    assert "embedded kafka server failed to start" in capsys.readouterr().err


def test_unknown_service_name_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["services", "up", "mysql"])
    assert caught.value.code == 2
    assert "unknown service mysql; choose from postgres, redis, kafka" in capsys.readouterr().err


def test_check_answers_with_exit_status(capsys: pytest.CaptureFixture[str], redis_url: str) -> None:
    assert main(["services", "check", "redis", redis_url]) == 0
    assert main(["services", "check", "postgres", "postgresql://nobody:pw@127.0.0.1:1/x"]) == 1
    error = capsys.readouterr().err
    assert "postgres at postgresql://nobody:***@127.0.0.1:1/x does not answer" in error


@pytest.mark.scaleout
def test_services_up_topology_prints_its_urls_and_down_stops_every_node(
    tmp_path: Path,
) -> None:
    state = str(tmp_path / "services.jsonl")
    up = _cli("services", "up", "--topology", "postgres-replica", "--state-file", state)
    assert up.returncode == 0, up.stderr
    exports = _exports(up.stdout)
    assert sorted(exports) == [
        "AEGIS_TEST_POSTGRES_FAILOVER_URL",
        "AEGIS_TEST_POSTGRES_REPLICA_URL",
        "AEGIS_TEST_POSTGRES_URL",
    ]
    nodes = [exports["AEGIS_TEST_POSTGRES_URL"], exports["AEGIS_TEST_POSTGRES_REPLICA_URL"]]
    try:
        # standard error is a pipe: the result line only, no progress lines
        assert re.fullmatch(r"postgres-replica healthy in \d+\.\ds\n", up.stderr), up.stderr
        with psycopg.connect(exports["AEGIS_TEST_POSTGRES_REPLICA_URL"]) as replica:
            assert replica.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
        again = _cli("services", "up", "--topology", "postgres-replica", "--state-file", state)
        assert _exports(again.stdout) == exports  # idempotent: the same nodes
        status = _cli("services", "status", "--state-file", state)
        assert status.returncode == 0
        assert status.stdout.count("postgres-replica postgres  running ") == 2
    finally:
        down = _cli("services", "down", "--state-file", state)
    assert down.returncode == 0
    assert "stopped postgres-replica (2 nodes)" in down.stderr
    for url in nodes:
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(url, connect_timeout=2).close()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.scaleout
def test_services_up_topology_on_a_terminal_shows_each_node_starting_and_healthy(
    tmp_path: Path,
) -> None:
    state = str(tmp_path / "services.jsonl")
    with terminal_stderr() as terminal:
        # The installed command, its standard error on the terminal: in process, the detached
        # nodes' Popen objects would outlive the test with their processes running.
        up = _cli(
            "services", "up", "--topology", "postgres-replica", "--state-file", state,
            on_terminal=True,
        )  # fmt: skip
    assert up.returncode == 0, terminal.text
    try:
        primary, replica = (
            f"{STAMP}node {name} \\(postgres, port \\d+\\)" for name in ("primary", "replica")
        )
        healthy = r"healthy in \d+\.\d\ds"
        patterns = [
            f"{STAMP}postgres-replica topology starting \\.\\.\\.",
            f"{STAMP}node primary: initdb \\.\\.\\.",
            f"{primary} starting",
            f"{primary} {healthy}",
            f"{STAMP}node replica: pg_basebackup from primary \\.\\.\\.",
            f"{replica} starting",
            f"{replica} {healthy}",
            f"{STAMP}node replica: waiting until it streams from primary \\.\\.\\.",
            r"postgres-replica healthy in \d+\.\ds",  # the result line, as in a pipe
        ]
        lines = terminal.lines()
        assert len(lines) == len(patterns), lines
        for line, pattern in zip(lines, patterns, strict=True):
            assert re.fullmatch(pattern, line), (line, pattern)
    finally:
        assert _cli("services", "down", "--state-file", state).returncode == 0

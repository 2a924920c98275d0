"""The ./dev entry script: its help, and the clear errors a newcomer meets first."""

from __future__ import annotations

import subprocess
from pathlib import Path


def _dev(
    root: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(root / "dev"), *args], capture_output=True, text=True, check=False, env=env
    )


def test_help_lists_every_command(root: Path) -> None:
    result = _dev(root, "help")
    assert result.returncode == 0
    for command in ["setup", "test [PYTEST ARGS]", "lint", "services up", "build"]:
        assert command in result.stdout


def test_unknown_command_is_refused_with_the_help(root: Path) -> None:
    result = _dev(root, "deploy")
    assert result.returncode == 1
    assert "error: unknown command: deploy" in result.stderr
    assert "usage: ./dev COMMAND" in result.stderr


def test_setup_refuses_a_python_older_than_3_11(root: Path, tmp_path: Path) -> None:
    old_python = tmp_path / "python3.10"
    old_python.write_text(
        '#!/bin/sh\n[ "$1" = "--version" ] && echo "Python 3.10.14"\n[ "$1" = "-c" ] && exit 1\n'
    )
    old_python.chmod(0o755)
    result = _dev(root, "setup", env={"PATH": "/usr/bin:/bin", "PYTHON": str(old_python)})
    assert result.returncode == 1
    assert f"aegis needs Python 3.11 or newer; {old_python} is Python 3.10.14" in result.stderr


def test_services_needs_an_action(root: Path) -> None:
    result = _dev(root, "services", "restart")
    assert result.returncode == 1
    assert "usage: ./dev services up [KIND...]|down|status" in result.stderr


def test_help_lists_the_release_commands(root: Path) -> None:
    result = _dev(root, "help")
    for command in ["release PACKAGE VERSION", "publish --index URL", "docs", "test --lowest"]:
        assert command in result.stdout


def test_build_names_the_members_when_a_package_is_unknown(root: Path) -> None:
    result = _dev(root, "build", "aegis-nope")
    assert result.returncode == 1
    assert "error: no member aegis-nope in packages/ (members: aegis-all" in result.stderr


def test_a_command_given_help_prints_the_help_instead_of_running(root: Path) -> None:
    for command in ["build", "setup", "lock", "publish"]:
        result = _dev(root, command, "--help")
        assert result.returncode == 0, (command, result.stderr)
        assert "usage: ./dev COMMAND" in result.stdout
        assert "no member" not in result.stderr


def test_lock_refuses_an_unknown_option(root: Path) -> None:
    result = _dev(root, "lock", "--newest")
    assert result.returncode == 1
    assert "usage: ./dev lock [--check | --upgrade [PACKAGE..]]" in result.stderr


def test_help_names_the_lock_and_the_drift_check(root: Path) -> None:
    result = _dev(root, "help")
    for command in ["lock [--upgrade [PACKAGE..]]", "test --latest", "tools/requirements.lock"]:
        assert command in result.stdout

"""``aegis-service new NAME`` writes a service whose own tests pass the moment it exists."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from aegis.core.errors import ConfigurationError
from aegis.service._scaffold import main, new_service


def test_a_new_service_passes_its_own_tests_with_plain_pytest_and_no_install(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "order-desk"
    assert main(["new", "order-desk", "--directory", str(target)]) == 0
    assert f"Wrote {target}" in capsys.readouterr().out
    assert (target / "src" / "order_desk" / "app.py").is_file()
    assert (target / "schemas" / "registry.yaml").is_file()
    # A fresh interpreter in the generated folder: its pytest settings, aegis-testing's plugin
    # and fixtures (the Redis of AEGIS_TEST_REDIS_URL, else an embedded one).
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q"],
        cwd=target,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 passed" in result.stdout


@pytest.mark.parametrize("name", ["Orders", "1st", "a--b", "orders-", "x" * 41, "or ders"])
def test_a_name_that_is_not_a_package_name_is_refused(name: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="lower-case letters"):
        new_service(name, tmp_path / "out")


def test_a_non_empty_directory_is_never_overwritten(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    assert main(["new", "orders", "--directory", str(tmp_path)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_the_console_script_is_installed() -> None:
    from importlib.metadata import entry_points

    (script,) = entry_points(group="console_scripts", name="aegis-service")
    assert script.value == "aegis.service._scaffold:main"

"""The workspace lock: ./dev setup installs exactly its pins, and a stale lock is refused."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
from lock import Pin, differences, locked_here, normalise, read_lock

LOCK = Path(__file__).resolve().parent.parent / "tools" / "requirements.lock"


def _pip_freeze() -> dict[str, str]:
    output = subprocess.run(
        [sys.executable, "-m", "pip", "freeze", "--all", "--exclude-editable"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    pins = [line.split("==", 1) for line in output.splitlines() if "==" in line]
    return {normalise(name): version for name, version in pins}


@pytest.mark.skipif(
    os.environ.get("AEGIS_UNLOCKED") == "1",
    reason="./dev test --latest runs with the newest allowed versions instead of the lock",
)
def test_pip_freeze_of_the_venv_equals_the_lock() -> None:
    assert differences(locked_here(LOCK), _pip_freeze()) == []


def test_every_pin_of_the_lock_is_exact_and_hash_checked() -> None:
    lines = LOCK.read_text().splitlines()
    pin_lines = [i for i, line in enumerate(lines) if line[:1].isalnum()]
    assert len(pin_lines) == len(read_lock(LOCK))
    for i in pin_lines:
        assert "==" in lines[i], lines[i]
        assert lines[i + 1].strip().startswith("--hash=sha256:"), lines[i]
    names = {pin.name for pin in read_lock(LOCK)}
    assert {"uv", "pytest", "mypy", "sqlalchemy", "redis", "pyjwt", "fastapi"} <= names


def test_a_pin_applies_only_where_its_marker_holds() -> None:
    assert Pin("numpy", "2.4.6", None).applies()
    assert Pin("numpy", "2.4.6", "python_full_version >= '3.11'").applies()
    assert not Pin("numpy", "2.4.6", "python_full_version < '3.11'").applies()


def test_read_lock_takes_name_version_and_marker_of_each_pin(tmp_path: Path) -> None:
    lock = tmp_path / "requirements.lock"
    lock.write_text(
        "# header\n"
        "Jaraco.Classes==3.4.0 \\\n    --hash=sha256:aa\n    # via keyring\n"
        "numpy==2.4.6 ; python_full_version < '3.12' \\\n    --hash=sha256:bb\n"
    )
    assert read_lock(lock) == [
        Pin("jaraco-classes", "3.4.0", None),
        Pin("numpy", "2.4.6", "python_full_version < '3.12'"),
    ]


def test_drift_names_each_package_that_moved_appeared_or_went() -> None:
    lines = differences({"redis": "8.1.0", "gone": "1.0"}, {"redis": "8.2.0", "new": "2.0"})
    assert [line.split()[0] for line in lines] == ["gone", "new", "redis"]
    assert lines[2].split() == ["redis", "lock", "8.1.0", "installed", "8.2.0"]
    assert differences({"a": "1"}, {"a": "1"}) == []


def _copy_of_the_lock_inputs(root: Path, target: Path) -> Path:
    shutil.copy2(root / "dev", target / "dev")
    shutil.copytree(root / "tools", target / "tools", ignore=shutil.ignore_patterns("__pycache__"))
    for folder in ["packages", "examples"]:
        for pyproject in (root / folder).glob("*/pyproject.toml"):
            copy = target / pyproject.relative_to(root)
            copy.parent.mkdir(parents=True)
            shutil.copy2(pyproject, copy)
    return target


def test_the_committed_lock_is_current(root: Path) -> None:
    result = subprocess.run(
        [str(root / "dev"), "lock", "--check"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


def test_a_requirement_changed_without_relocking_is_refused(root: Path, tmp_path: Path) -> None:
    copy = _copy_of_the_lock_inputs(root, tmp_path)
    pyproject = copy / "packages" / "aegis-db" / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace("<2.2", "<2.3", 1))
    result = subprocess.run(
        [str(copy / "dev"), "lock", "--check"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 1
    assert "tools/requirements.lock is out of date" in result.stderr
    assert "run ./dev lock and commit it" in result.stderr

"""Repository-wide checks: the workspace layout, installs and packaging of every member."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _members() -> list[Path]:
    return sorted(p.parent for p in (ROOT / "packages").glob("*/pyproject.toml"))


def is_meta_package(member: Path) -> bool:
    """Whether a member is metadata only (aegis-all): a wheel that bypasses file selection."""
    pyproject = tomllib.loads((member / "pyproject.toml").read_text())
    wheel = pyproject.get("tool", {}).get("hatch", {}).get("build", {}).get("targets", {})
    return bool(wheel.get("wheel", {}).get("bypass-selection", False))


@pytest.fixture(scope="session")
def root() -> Path:
    """The repository root."""
    return ROOT


@pytest.fixture(scope="session")
def built_dists(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with the wheel and sdist of every member, built once per test session."""
    out = tmp_path_factory.mktemp("dist")
    builds = [
        (
            member,
            subprocess.Popen(
                [sys.executable, "-m", "hatchling", "build", "-d", str(out)],
                cwd=member,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            ),
        )
        for member in _members()
    ]
    failed = []
    for member, build in builds:
        output, _ = build.communicate()
        if build.returncode != 0:
            failed.append(f"{member.name}:\n{output}")
    assert not failed, "hatchling build failed for\n" + "\n".join(failed)
    return out


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run every test that takes ``member`` once per workspace member."""
    if "member" in metafunc.fixturenames:
        members = _members()
        metafunc.parametrize("member", members, ids=[m.name for m in members])

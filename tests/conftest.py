"""Repository-wide checks: the workspace layout, installs and packaging of every member."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _members() -> list[Path]:
    return sorted(p.parent for p in (ROOT / "packages").glob("*/pyproject.toml"))


@pytest.fixture(scope="session")
def root() -> Path:
    """The repository root."""
    return ROOT


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run every test that takes ``member`` once per workspace member."""
    if "member" in metafunc.fixturenames:
        members = _members()
        metafunc.parametrize("member", members, ids=[m.name for m in members])

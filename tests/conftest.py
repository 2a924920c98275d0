"""Repository-wide checks: the workspace layout, installs and packaging of every member."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable
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


def once_per_session(
    tmp_path_factory: pytest.TempPathFactory, name: str, make: Callable[[Path], object]
) -> Path:
    """A directory ``make`` fills once per test session, even across pytest-xdist workers.

    Under ``./dev test``'s workers the first one to ask makes it in the session's shared
    temporary directory while the others wait for it, then reuse it.
    """
    if os.environ.get("PYTEST_XDIST_WORKER") is None:
        out = tmp_path_factory.mktemp(name)
        make(out)
        return out
    shared = tmp_path_factory.getbasetemp().parent  # pytest-N, above each worker's popen-gwK
    out, done = shared / name, shared / f"{name}.complete"
    with (shared / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            shutil.rmtree(out, ignore_errors=True)  # what a worker that failed left behind
            out.mkdir()
            make(out)
            done.touch()
    return out


@pytest.fixture(scope="session")
def built_dists(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with the wheel and sdist of every member, built once per test session."""
    return once_per_session(tmp_path_factory, "dist", _build_every_member)


def _build_every_member(out: Path) -> Path:
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


@pytest.fixture(scope="session")
def built_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The documentation site, built once per test session with ``mkdocs build --strict``.

    Into AEGIS_DOCS_SITE when set (CI uploads that folder, the browser test's screenshots
    included), else into a temporary folder. A failed or non-strict build fails every test that
    uses it, with MkDocs' output.
    """
    target = os.environ.get("AEGIS_DOCS_SITE")
    if not target:
        return once_per_session(tmp_path_factory, "site", _build_site)
    site = Path(target).resolve()
    once_per_session(tmp_path_factory, "site-in-target", lambda _: _build_site(site))
    return site


def _build_site(site: Path) -> None:
    # NO_MKDOCS_2_WARNING: mkdocs-material prints a banner about its successor on every build.
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stderr}"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run every test that takes ``member`` once per workspace member."""
    if "member" in metafunc.fixturenames:
        members = _members()
        metafunc.parametrize("member", members, ids=[m.name for m in members])

"""./dev release in a scratch git repository with this repo's dev script and tools."""

from __future__ import annotations

import datetime
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
from public_api import declared_all, public_names
from release import ReleaseError, Version, move_unreleased, release_notes

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Release Test",
    "GIT_AUTHOR_EMAIL": "release@example.com",
    "GIT_COMMITTER_NAME": "Release Test",
    "GIT_COMMITTER_EMAIL": "release@example.com",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}
CHANGELOG = """# Changelog

## [Unreleased]

### Added

- `greet()`.
"""


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _member(repo: Path, name: str, names: list[str], requires: str = "") -> None:
    member = repo / "packages" / f"aegis-{name}"
    _write(
        member / "pyproject.toml",
        f'[project]\nname = "aegis-{name}"\ndynamic = ["version"]\n'
        f"dependencies = [{requires}]\n"
        f'[tool.hatch.version]\npath = "src/aegis/{name}/__about__.py"\n',
    )
    _write(member / "src" / "aegis" / name / "__about__.py", '__version__ = "0.1.0"\n')
    _write(member / "src" / "aegis" / name / "__init__.py", f"__all__ = {names!r}\n")
    _write(member / "src" / "aegis" / name / "_impl.py", "__all__ = ['private']\n")
    _write(member / "CHANGELOG.md", CHANGELOG)


def _git(repo: Path, *args: str) -> str:
    env = {**os.environ, **GIT_ENV}
    return subprocess.run(
        ["git", *args], cwd=repo, env=env, capture_output=True, text=True, check=True
    ).stdout


def _dev(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **GIT_ENV}
    return subprocess.run(
        [str(repo / "dev"), *args], cwd=repo, env=env, capture_output=True, text=True, check=False
    )


def _commit_all(repo: Path, message: str) -> None:
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", message)


@pytest.fixture
def repo(root: Path, tmp_path: Path) -> Path:
    """A git repository with this checkout's dev script and tools, and two small members."""
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copy2(root / "dev", repo / "dev")
    shutil.copytree(root / "tools", repo / "tools", ignore=shutil.ignore_patterns("__pycache__"))
    _member(repo, "demo", ["greet"])
    _member(repo, "user", ["User"], requires='"aegis-demo>=0.1,<0.2"')
    _git(repo, "init", "-q", "-b", "main")
    _commit_all(repo, "initial")
    return repo


def test_first_release_dates_the_changelog_commits_and_tags(repo: Path) -> None:
    before = datetime.date.today()
    result = _dev(repo, "release", "demo", "0.1.0")
    after = datetime.date.today()  # a run across midnight may date the release either day
    assert result.returncode == 0, result.stderr
    assert "aegis-demo: 0.1.0 -> 0.1.0 (last release: none)" in result.stdout
    changelog = (repo / "packages/aegis-demo/CHANGELOG.md").read_text()
    assert changelog in {
        f"# Changelog\n\n## [Unreleased]\n\n## [0.1.0] - {day.isoformat()}\n\n### Added\n\n"
        "- `greet()`.\n\n"
        for day in (before, after)
    }
    assert _git(repo, "tag", "--list").split() == ["aegis-demo-v0.1.0"]
    assert _git(repo, "log", "-1", "--format=%s").strip() == "aegis-demo 0.1.0"
    assert _git(repo, "status", "--porcelain") == ""
    shown = _git(repo, "diff-tree", "--no-commit-id", "--name-only", "-r", "aegis-demo-v0.1.0^{}")
    assert shown.split() == ["packages/aegis-demo/CHANGELOG.md"]  # __about__ unchanged at 0.1.0


def _next_change(repo: Path, names: list[str], entry: str) -> None:
    init = repo / "packages/aegis-demo/src/aegis/demo/__init__.py"
    init.write_text(f"__all__ = {names!r}\n")
    changelog = repo / "packages/aegis-demo/CHANGELOG.md"
    changelog.write_text(
        changelog.read_text().replace("## [Unreleased]\n", f"## [Unreleased]\n\n- {entry}\n")
    )
    _commit_all(repo, entry)


def test_removing_a_public_name_needs_a_breaking_bump(repo: Path) -> None:
    assert _dev(repo, "release", "demo", "0.1.0").returncode == 0
    _next_change(repo, ["hello"], "greet() is now hello()")
    refused = _dev(repo, "release", "aegis-demo", "0.1.1")
    assert refused.returncode == 1
    assert "aegis-demo 0.1.1 removes public names that 0.1.0 has:\n  - aegis.demo.greet" in (
        refused.stderr
    )
    assert "release 0.2.0 instead" in refused.stderr
    assert _git(repo, "tag", "--list").split() == ["aegis-demo-v0.1.0"]
    assert '"0.1.0"' in (repo / "packages/aegis-demo/src/aegis/demo/__about__.py").read_text()

    accepted = _dev(repo, "release", "aegis-demo", "0.2.0")
    assert accepted.returncode == 0, accepted.stderr
    assert "  - aegis.demo.greet\n  + aegis.demo.hello" in accepted.stdout
    about = repo / "packages/aegis-demo/src/aegis/demo/__about__.py"
    assert about.read_text() == '__version__ = "0.2.0"\n'
    assert "warning: aegis-user requires aegis-demo>=0.1,<0.2, which excludes 0.2.0" in (
        accepted.stdout
    )


def test_after_1_0_a_removal_needs_a_major_and_an_addition_a_minor(repo: Path) -> None:
    assert _dev(repo, "release", "demo", "1.0.0").returncode == 0
    _next_change(repo, ["greet", "wave"], "wave()")
    assert "release 1.1.0 instead of a patch" in _dev(repo, "release", "demo", "1.0.1").stderr
    assert _dev(repo, "release", "demo", "1.1.0").returncode == 0
    _next_change(repo, ["wave"], "greet() removed")
    assert "release 2.0.0 instead" in _dev(repo, "release", "demo", "1.2.0").stderr
    assert _dev(repo, "release", "demo", "2.0.0").returncode == 0
    assert _git(repo, "tag", "--list").split() == [
        "aegis-demo-v1.0.0",
        "aegis-demo-v1.1.0",
        "aegis-demo-v2.0.0",
    ]


def test_a_patch_with_the_same_public_names_is_accepted(repo: Path) -> None:
    assert _dev(repo, "release", "demo", "0.1.0").returncode == 0
    _next_change(repo, ["greet"], "greet() is faster")
    result = _dev(repo, "release", "demo", "0.1.1")
    assert result.returncode == 0, result.stderr
    assert "public API since aegis-demo-v0.1.0:\n  unchanged" in result.stdout


@pytest.mark.parametrize(
    ("version", "message"),
    [
        ("1.0", "'1.0' is not a version: use MAJOR.MINOR.PATCH"),
        ("0.0.9", "aegis-demo is at 0.1.0 already: 0.0.9 would go back"),
        ("0.1.0", "tag aegis-demo-v0.1.0 exists already"),
    ],
)
def test_release_refuses_a_version_that_is_not_new(repo: Path, version: str, message: str) -> None:
    _git(repo, "tag", "-a", "aegis-demo-v0.1.0", "-m", "released by hand")
    result = _dev(repo, "release", "demo", version)
    assert result.returncode == 1
    assert message in result.stderr


def test_release_refuses_uncommitted_changes_in_the_member(repo: Path) -> None:
    (repo / "packages/aegis-demo/src/aegis/demo/extra.py").write_text("")
    result = _dev(repo, "release", "demo", "0.1.0")
    assert result.returncode == 1
    assert "uncommitted changes in packages/aegis-demo: commit them first" in result.stderr
    assert _git(repo, "tag", "--list") == ""


def test_release_refuses_an_empty_unreleased_section(repo: Path) -> None:
    assert _dev(repo, "release", "demo", "0.1.0").returncode == 0
    result = _dev(repo, "release", "demo", "0.1.1")
    assert result.returncode == 1
    assert "nothing under '## [Unreleased]' in CHANGELOG.md" in result.stderr


def test_release_names_the_members_when_the_package_is_unknown(repo: Path) -> None:
    result = _dev(repo, "release", "nope", "1.0.0")
    assert result.returncode == 1
    assert "no member aegis-nope in packages/ (members: aegis-demo, aegis-user)" in result.stderr
    assert "usage: ./dev release PACKAGE VERSION" in _dev(repo, "release", "demo").stderr


def test_a_static_version_in_pyproject_is_bumped(repo: Path) -> None:
    meta = repo / "packages/aegis-meta"
    _write(meta / "pyproject.toml", '[project]\nname = "aegis-meta"\nversion = "0.1.0"\n')
    _write(meta / "CHANGELOG.md", CHANGELOG)
    _commit_all(repo, "meta")
    assert _dev(repo, "release", "meta", "0.1.0").returncode == 0
    changelog = (meta / "CHANGELOG.md").read_text()
    (meta / "CHANGELOG.md").write_text(
        changelog.replace("## [Unreleased]\n", "## [Unreleased]\n\n- aegis-demo 0.2\n")
    )
    _commit_all(repo, "meta changes")
    assert _dev(repo, "release", "meta", "0.2.0").returncode == 0
    assert 'version = "0.2.0"' in (meta / "pyproject.toml").read_text()


def _tool(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(repo / "tools/release.py"), *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
    )


def test_verify_tag_and_notes_serve_the_release_workflow(repo: Path) -> None:
    assert _dev(repo, "release", "demo", "0.1.0").returncode == 0
    verified = _tool(repo, "verify-tag", "aegis-demo-v0.1.0")
    assert verified.stdout.splitlines() == [
        "package=aegis-demo",
        "version=0.1.0",
        "member=packages/aegis-demo",
    ]
    mismatch = _tool(repo, "verify-tag", "aegis-demo-v0.3.0")
    assert mismatch.returncode == 1
    assert "tag aegis-demo-v0.3.0 says 0.3.0 but" in mismatch.stderr
    assert "not a release tag" in _tool(repo, "verify-tag", "v1.0.0").stderr
    notes = _tool(repo, "notes", "demo", "0.1.0")
    assert notes.stdout == "### Added\n\n- `greet()`.\n"


def test_move_unreleased_keeps_older_releases_below() -> None:
    changelog = "# C\n\n## [Unreleased]\n\n- new\n\n## [0.1.0] - 2025-01-01\n\n- old\n"
    moved = move_unreleased(changelog, Version.parse("0.2.0"), datetime.date(2025, 2, 3))
    assert moved == (
        "# C\n\n## [Unreleased]\n\n## [0.2.0] - 2025-02-03\n\n- new\n\n"
        "## [0.1.0] - 2025-01-01\n\n- old\n"
    )
    assert release_notes(moved, Version.parse("0.1.0")) == "- old\n"
    with pytest.raises(ReleaseError, match="no '## \\[Unreleased\\]' section"):
        move_unreleased("# C\n", Version.parse("1.0.0"), datetime.date(2025, 1, 1))


def test_versions_order_pre_releases_before_the_final() -> None:
    versions = ["1.0.0", "1.0.0rc1", "0.9.9", "1.0.0a2", "1.0.0b1", "1.0.1"]
    ordered = [str(v) for v in sorted(Version.parse(v) for v in versions)]
    assert ordered == ["0.9.9", "1.0.0a2", "1.0.0b1", "1.0.0rc1", "1.0.0", "1.0.1"]


def test_public_names_come_from_all_of_public_modules_only() -> None:
    sources = {
        "aegis/demo/__init__.py": "__all__ = ['A']\n__all__ += ['B']\n",
        "aegis/demo/errors.py": "__all__: list[str] = ['DemoError']\n",
        "aegis/demo/_impl.py": "__all__ = ['hidden']\n",
        "aegis/demo/utils/_x.py": "",
        "aegis/demo/plain.py": "value = 1\n",
    }
    assert public_names(sources) == {
        "aegis.demo",
        "aegis.demo.A",
        "aegis.demo.B",
        "aegis.demo.errors",
        "aegis.demo.errors.DemoError",
        "aegis.demo.plain",
    }
    assert declared_all("x = 1\n") is None
    with pytest.raises(ValueError, match="__all__ must be a literal list of strings"):
        declared_all("__all__ = sorted(globals())\n", "m.py")

"""The workspace members under packages/: their names, versions and internal requirements.

Standard library only (tools/release.py and tools/affected.py import it outside .venv).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_VERSION = re.compile(r'^__version__ = "(?P<version>[^"]+)"', re.M)


def normalise(name: str) -> str:
    """A distribution name as PEP 503 compares it."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Member:
    """One distribution under packages/."""

    path: Path
    project: dict[str, object]
    meta: bool

    @property
    def name(self) -> str:
        """The distribution name, e.g. ``aegis-db``."""
        return str(self.project["name"])

    @property
    def version(self) -> str:
        """The version in ``__about__.py``, or pyproject's static version (aegis-all)."""
        if "version" in self.project:
            return str(self.project["version"])
        name = self.name.removeprefix("aegis-")
        about = self.path / "src" / "aegis" / name / "__about__.py"
        match = _VERSION.search(about.read_text())
        if match is None:
            raise ValueError(f'{about}: no __version__ = "..." line')
        return match.group("version")

    def requirements(self, *, extras: bool = True) -> list[str]:
        """The requirement strings of ``dependencies`` (and of every extra)."""
        found = [str(r) for r in self.project.get("dependencies", []) or []]  # type: ignore[attr-defined]
        if extras:
            optional = self.project.get("optional-dependencies", {}) or {}
            found += [str(r) for group in optional.values() for r in group]  # type: ignore[attr-defined]
        return found


def load_member(path: Path) -> Member:
    """Read ``path/pyproject.toml``."""
    pyproject = tomllib.loads((path / "pyproject.toml").read_text())
    targets = pyproject.get("tool", {}).get("hatch", {}).get("build", {}).get("targets", {})
    meta = bool(targets.get("wheel", {}).get("bypass-selection", False))
    return Member(path, pyproject["project"], meta)


def load_members(root: Path) -> dict[str, Member]:
    """Every member under ``root/packages``, by normalised name."""
    members = [load_member(p.parent) for p in sorted((root / "packages").glob("*/pyproject.toml"))]
    return {normalise(m.name): m for m in members}


def requirement_name(requirement: str) -> str:
    """The normalised distribution name a PEP 508 requirement string refers to."""
    match = _NAME.match(requirement)
    if match is None:
        raise ValueError(f"not a requirement: {requirement!r}")
    return normalise(match.group(1))


def internal_dependencies(members: dict[str, Member]) -> dict[str, set[str]]:
    """For each member, the members it requires (dependencies and extras alike)."""
    return {
        name: {requirement_name(r) for r in m.requirements()} & set(members) - {name}
        for name, m in members.items()
    }

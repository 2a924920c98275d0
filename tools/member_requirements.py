"""Print the third-party requirements of the local projects in the given folders, one per line.

Usage: python tools/member_requirements.py [FOLDER..]   (default: packages)

./dev locks these (with the dev tools) and installs the local projects themselves with --no-deps
from their paths: `aegis-core` and `aegis` on PyPI are unrelated projects, so no aegis-*
distribution may ever be resolved from an index. A requirement on an aegis-* name that is not a
local project is an error. Standard library only: ./dev runs it before .venv has anything.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def requirement_name(requirement: str) -> str:
    """Return the normalised distribution name a PEP 508 requirement string refers to."""
    match = _NAME.match(requirement)
    if match is None:
        raise ValueError(f"not a requirement: {requirement!r}")
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def third_party_requirements(*folders: Path) -> list[str]:
    """Collect the non-local requirements (dependencies and all extras) of every local project.

    Each folder holds projects (``FOLDER/*/pyproject.toml``): the members under ``packages/``,
    the sample services under ``examples/``. A requirement on any of them is local.
    """
    projects = {}
    for folder in folders:
        for pyproject in sorted(folder.glob("*/pyproject.toml")):
            project = tomllib.loads(pyproject.read_text())["project"]
            projects[requirement_name(project["name"])] = (pyproject, project)
    found: list[str] = []
    for pyproject, project in projects.values():
        extras = project.get("optional-dependencies", {}).values()
        for requirement in [*project.get("dependencies", []), *(r for e in extras for r in e)]:
            name = requirement_name(requirement)
            if name in projects:
                continue
            if name.startswith("aegis"):
                raise SystemExit(f"{pyproject}: {requirement!r} is not a member of this workspace")
            if requirement not in found:
                found.append(requirement)
    return found


if __name__ == "__main__":
    folders = [Path(arg) for arg in sys.argv[1:]] or [Path("packages")]
    print("\n".join(third_party_requirements(*folders)))

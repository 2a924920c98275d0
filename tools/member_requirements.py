"""Print the third-party requirements of every workspace member, one per line.

./dev installs these from the package index and then the members themselves with --no-deps
from their local paths: `aegis-core` and `aegis` on PyPI are unrelated projects, so no aegis-*
distribution may ever be resolved from an index. A requirement on an aegis-* name that is not a
local member is an error.
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


def third_party_requirements(packages_dir: Path) -> list[str]:
    """Collect the non-member requirements (dependencies and all extras) of every member."""
    projects = {}
    for pyproject in sorted(packages_dir.glob("*/pyproject.toml")):
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
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("packages")
    print("\n".join(third_party_requirements(root)))

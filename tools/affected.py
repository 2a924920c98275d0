"""The members a change touches, with every member that depends on them: CI's test matrix.

Usage: python tools/affected.py --base REF     prints {"package": [...]} as JSON

A change under packages/aegis-X/ selects aegis-X and its dependents (through dependencies and
extras, transitively); a change to aegis-core selects every member. A change to the shared
machinery (dev, tools/, tests/, pyproject.toml, .github/, .ci/) selects every member;
documentation alone (docs/, mkdocs.yml, *.md at the root) selects none. Metadata-only members
(aegis-all) have no tests of their own: the repository tests check them. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from members import internal_dependencies, load_members

EVERYTHING = "aegis-core"
DOCS_ONLY = ("docs/", "mkdocs.yml", "LICENSE", ".gitignore", ".editorconfig")


def affected(changed: list[str], dependencies: dict[str, set[str]]) -> list[str]:
    """The members to test for ``changed`` paths, given each member's internal dependencies."""
    selected: set[str] = set()
    for path in changed:
        parts = path.split("/")
        if parts[0] == "packages" and parts[1:2] and parts[1] in dependencies:
            selected.add(parts[1])
            continue
        if path.startswith(DOCS_ONLY) or (len(parts) == 1 and path.endswith(".md")):
            continue
        return sorted(dependencies)
    if EVERYTHING in selected:
        return sorted(dependencies)
    grew = True
    while grew:
        dependents = {m for m, needs in dependencies.items() if needs & selected}
        grew = not dependents <= selected
        selected |= dependents
    return sorted(selected)


def changed_files(repo: Path, base: str) -> list[str] | None:
    """Paths changed between the merge base of ``base`` and HEAD; None when base is unknown."""
    if not base.strip("0"):  # a new branch's push event has an all-zero "before"
        return None
    result = subprocess.run(
        ["git", "diff", "--name-only", f"{base}...HEAD"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.split() if result.returncode == 0 else None


def main() -> int:
    """Print the CI matrix for the change since ``--base`` (every member without one)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base", default="", help="the commit the change is measured from")
    parser.add_argument("--repo", type=Path, default=Path.cwd())
    args = parser.parse_args()
    members = load_members(args.repo)
    testable = internal_dependencies(members)
    changed = changed_files(args.repo, args.base) if args.base else None
    names = sorted(testable) if changed is None else affected(changed, testable)
    print(json.dumps({"package": [n for n in names if not members[n].meta]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""CI's test matrix: the members a change touches, with their dependents."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
from affected import affected
from members import internal_dependencies, load_members

DEPENDENCIES = {
    "aegis-core": set(),
    "aegis-db": {"aegis-core"},
    "aegis-auth": {"aegis-core", "aegis-testing"},  # aegis-testing through the test extra
    "aegis-log": {"aegis-core"},
    "aegis-testing": set(),
    "aegis-all": {"aegis-core", "aegis-db", "aegis-auth", "aegis-log"},
}
EVERY = sorted(DEPENDENCIES)


@pytest.mark.parametrize(
    ("changed", "expected"),
    [
        (["packages/aegis-db/src/aegis/db/_manager.py"], ["aegis-all", "aegis-db"]),
        (["packages/aegis-log/README.md"], ["aegis-all", "aegis-log"]),
        (
            ["packages/aegis-testing/src/aegis/testing/_plugin.py"],
            ["aegis-all", "aegis-auth", "aegis-testing"],
        ),
        (["packages/aegis-core/src/aegis/core/errors.py"], EVERY),
        (["packages/aegis-db/x.py", "packages/aegis-core/pyproject.toml"], EVERY),
        (["dev"], EVERY),
        (["tools/member_requirements.py"], EVERY),
        ([".github/workflows/ci.yml"], EVERY),
        (["docs/index.md", "mkdocs.yml", "README.md"], []),
        ([], []),
    ],
)
def test_a_change_selects_its_members_and_their_dependents(
    changed: list[str], expected: list[str]
) -> None:
    assert affected(changed, DEPENDENCIES) == expected


def test_every_member_depends_on_aegis_core_or_is_aegis_testing(root: Path) -> None:
    # "A change to aegis-core tests everything" is only a shortcut while this holds.
    for name, needs in internal_dependencies(load_members(root)).items():
        assert "aegis-core" in needs or name in {"aegis-core", "aegis-testing"}, name


def test_the_matrix_leaves_out_metadata_only_members(root: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(root / "tools/affected.py"), "--repo", str(root)],
        capture_output=True,
        text=True,
        check=True,
    )
    matrix = json.loads(result.stdout)["package"]
    assert "aegis-all" not in matrix
    assert "aegis-core" in matrix
    assert matrix == sorted(matrix)

"""aegis-all: a metadata-only wheel that requires every member at a compatible range."""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

from packaging.requirements import Requirement

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
from dist_requirements import install_closure, wheel_metadata
from members import load_members, normalise

TEST_ONLY = {"aegis-testing"}  # the `testing` extra: no embedded servers in production images


def test_aegis_all_requires_every_runtime_member_once_in_name_order(root: Path) -> None:
    members = load_members(root)
    meta = members["aegis-all"]
    names = [normalise(Requirement(r).name) for r in meta.requirements(extras=False)]
    runtime = sorted(n for n, m in members.items() if not m.meta and n not in TEST_ONLY)
    assert names == runtime, "add the new member to aegis-all's dependencies, in name order"


def test_aegis_all_testing_extra_adds_aegis_testing(root: Path) -> None:
    optional = load_members(root)["aegis-all"].project["optional-dependencies"]
    assert isinstance(optional, dict)
    assert [normalise(Requirement(r).name) for r in optional["testing"]] == sorted(TEST_ONLY)


def test_aegis_all_wheel_is_metadata_that_resolves_to_every_member(
    root: Path, built_dists: Path
) -> None:
    (wheel,) = built_dists.glob("aegis_all-*.whl")
    assert all(".dist-info/" in n for n in zipfile.ZipFile(wheel).namelist())
    name, requires = wheel_metadata(wheel)
    assert name == "aegis-all"
    always = {
        str(Requirement(r)) for r in load_members(root)["aegis-all"].requirements(extras=False)
    }
    assert {r for r in requires if "extra ==" not in r} == always
    closure = install_closure(built_dists, ["aegis-all[testing]"])
    assert set(closure.aegis) == set(load_members(root))

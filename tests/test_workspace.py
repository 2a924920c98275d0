"""Every member follows the house layout and is installed from its local path."""

from __future__ import annotations

import json
import sys
import tomllib
import zipfile
from importlib.metadata import distributions
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
from member_requirements import requirement_name, third_party_requirements
from members import load_member


def _project(member: Path) -> dict[str, object]:
    project: dict[str, object] = tomllib.loads((member / "pyproject.toml").read_text())["project"]
    return project


def test_member_has_the_house_layout(member: Path) -> None:
    for required in ["README.md", "CHANGELOG.md"]:
        assert (member / required).is_file(), f"{member / required} is missing"
    assert "## [Unreleased]" in (member / "CHANGELOG.md").read_text()
    if load_member(member).meta:
        # aegis-all: metadata only. Its checks are in tests/test_aegis_all.py.
        assert not (member / "src").exists()
        return
    namespace = member / "src" / "aegis"
    packages = [p for p in namespace.iterdir() if p.is_dir() and p.name != "__pycache__"]
    assert not (namespace / "__init__.py").exists(), "src/aegis/ must stay a PEP 420 namespace"
    assert len(packages) == 1
    package = packages[0]
    assert _project(member)["name"] == f"aegis-{package.name}"
    for required in ["__init__.py", "__about__.py", "py.typed"]:
        assert (package / required).is_file(), f"{package / required} is missing"
    assert list((member / "tests").glob("test_*.py")), "a member without tests"
    assert not (member / "tests" / "__init__.py").exists()


def test_every_installed_aegis_distribution_is_the_local_editable_member(root: Path) -> None:
    installed = {
        requirement_name(dist.metadata["Name"]): dist
        for dist in distributions()
        if requirement_name(dist.metadata["Name"]).startswith("aegis")
    }
    members = {
        requirement_name(str(_project(m)["name"])): m
        for m in (root / "packages").iterdir()
        if (m / "pyproject.toml").exists()
    }
    assert sorted(installed) == sorted(members)
    for name, dist in installed.items():
        direct_url = json.loads(dist.read_text("direct_url.json") or "{}")
        assert direct_url.get("dir_info", {}).get("editable") is True, f"{name} is not editable"
        assert direct_url["url"] == members[name].resolve().as_uri(), f"{name} is not local"


def test_member_wheel_ships_only_its_own_package(member: Path, built_dists: Path) -> None:
    distribution = member.name.replace("-", "_")
    (wheel,) = built_dists.glob(f"{distribution}-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "aegis/__init__.py" not in names
    if load_member(member).meta:
        assert all(n.startswith(f"{distribution}-") for n in names), names
        return
    package = next(p.name for p in (member / "src" / "aegis").iterdir() if p.is_dir())
    code = [n for n in names if not n.startswith(wheel.name.split("-")[0] + "-")]
    assert code
    assert all(n.startswith(f"aegis/{package}/") for n in code), code
    assert f"aegis/{package}/py.typed" in names


def test_requirements_of_members_never_name_a_foreign_aegis_distribution(tmp_path: Path) -> None:
    member = tmp_path / "aegis-db"
    member.mkdir()
    (member / "pyproject.toml").write_text(
        '[project]\nname = "aegis-db"\ndependencies = ["aegis-core>=0.1", "sqlalchemy>=2"]\n'
    )
    with pytest.raises(SystemExit, match=r"'aegis-core>=0\.1' is not a member of this workspace"):
        third_party_requirements(tmp_path)
    core = tmp_path / "aegis-core"
    core.mkdir()
    (core / "pyproject.toml").write_text(
        '[project]\nname = "aegis-core"\ndependencies = ["pydantic>=2"]\n'
        '[project.optional-dependencies]\nweb = ["starlette>=0.40", "pydantic>=2"]\n'
    )
    assert third_party_requirements(tmp_path) == ["pydantic>=2", "starlette>=0.40", "sqlalchemy>=2"]


@pytest.mark.parametrize(
    ("requirement", "name"),
    [("Aegis_Core[web]>=0.1", "aegis-core"), ("psycopg[binary] >= 3", "psycopg"), ("a.b", "a-b")],
)
def test_requirement_name_normalises(requirement: str, name: str) -> None:
    assert requirement_name(requirement) == name

"""Every member publishes complete metadata, and installing one pulls in only what it needs."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from email.parser import HeaderParser
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.version import Version
from trove_classifiers import classifiers as known_classifiers

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
from dist_requirements import install_closure
from members import load_member, load_members, normalise
from vendor import load_bundles

PYTHONS = ["3.11", "3.12", "3.13"]  # the CI matrix in .github/workflows/ci.yml

# Libraries that only the members which need them may pull in (PyPI names, normalised).
KAFKA = {"confluent-kafka", "aiokafka", "kafka-python"}
REDIS = {"redis", "hiredis", "valkey", "coredis"}
JWT = {"pyjwt", "python-jose", "authlib", "jwcrypto", "joserfc"}


def vendored_licenses(member: Path) -> list[tuple[str, str]]:
    """The licence file (relative to the member) and SPDX id of each bundle it vendors."""
    return [
        (str(bundle.target / "LICENSE"), bundle.license)
        for bundle in load_bundles()
        if bundle.member.resolve() == member.resolve()
    ]


def expected_license(member: Path) -> str:
    """MIT, joined by the licence of every bundle the member vendors (tools/vendored.toml)."""
    others = sorted({spdx for _, spdx in vendored_licenses(member)} - {"MIT"})
    return " AND ".join(["MIT", *others])


def test_member_metadata_is_complete(member: Path) -> None:
    project = load_member(member).project
    name = str(project["name"])
    description = str(project.get("description", ""))
    assert description.strip(), f"{name}: [project] description is empty"
    assert "\n" not in description, "PyPI's summary is one line"
    assert len(description) <= 200, "PyPI's summary is one short line"
    assert project.get("readme") == "README.md"
    assert (member / "README.md").read_text().startswith(f"# {name}\n")
    assert project.get("license") == expected_license(member), (
        'an SPDX expression: license = "MIT" (AND the licence of each vendored bundle)'
    )
    assert project.get("requires-python") == ">=3.11"
    assert project.get("authors"), f"{name}: [project] authors is missing"


def test_member_ships_the_repository_license(member: Path, root: Path) -> None:
    project = load_member(member).project
    vendored = [path for path, _ in vendored_licenses(member)]
    assert project.get("license-files") == ["LICENSE", *vendored]
    # PEP 639 license-files cannot reach outside the project folder: each member holds a copy.
    assert (member / "LICENSE").read_bytes() == (root / "LICENSE").read_bytes(), (
        f"{member.name}/LICENSE is not the root LICENSE: cp LICENSE {member.relative_to(root)}/"
    )


def test_member_wheel_and_sdist_carry_the_license_file(
    member: Path, root: Path, built_dists: Path
) -> None:
    license_text = (root / "LICENSE").read_bytes()
    stem = normalise(member.name).replace("-", "_")
    (wheel,) = built_dists.glob(f"{stem}-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        dist_info = wheel.name.split("-py3-")[0] + ".dist-info"
        assert archive.read(f"{dist_info}/licenses/LICENSE") == license_text
        metadata = HeaderParser().parsestr(archive.read(f"{dist_info}/METADATA").decode())
        vendored = [path for path, _ in vendored_licenses(member)]
        for path in vendored:  # in the licences and beside the bundle it covers
            assert archive.read(f"{dist_info}/licenses/{path}") == (member / path).read_bytes()
            assert archive.read(path.removeprefix("src/")) == (member / path).read_bytes()
    assert metadata.get_all("License-File") == ["LICENSE", *vendored]
    assert metadata["License-Expression"] == expected_license(member)
    (sdist,) = built_dists.glob(f"{stem}-*.tar.gz")
    with tarfile.open(sdist) as archive:
        member_file = archive.extractfile(f"{sdist.name.removesuffix('.tar.gz')}/LICENSE")
        assert member_file is not None
        assert member_file.read() == license_text


def test_member_classifiers_are_known_and_name_the_tested_pythons(member: Path) -> None:
    loaded = load_member(member)
    classifiers = list(loaded.project.get("classifiers", []))  # type: ignore[call-overload]
    assert not [c for c in classifiers if c not in known_classifiers], "unknown classifier"
    assert not [c for c in classifiers if c.startswith("License ::")], (
        "the SPDX `license` field replaces License :: classifiers (PEP 639)"
    )
    required = {
        "Programming Language :: Python :: 3 :: Only",
        *(f"Programming Language :: Python :: {version}" for version in PYTHONS),
    }
    if not loaded.meta:
        required.add("Typing :: Typed")  # with py.typed in the wheel: test_workspace.py
    assert required <= set(classifiers), f"missing: {sorted(required - set(classifiers))}"
    assert any(c.startswith("Development Status :: ") for c in classifiers)


def test_member_project_urls_point_at_its_folder_docs_and_changelog(
    member: Path, root: Path
) -> None:
    project = load_member(member).project
    name = str(project["name"])
    urls = project.get("urls")
    site = (
        yaml.safe_load(
            "\n".join(  # only the plain keys: the file's !!python/name tags need mkdocs to load
                line
                for line in (root / "mkdocs.yml").read_text().splitlines()
                if line.startswith(("site_url:", "repo_url:"))
            )
        )
        or {}
    )
    repository, docs_site = site.get("repo_url"), site.get("site_url")
    if repository is None or docs_site is None:
        # The repository has no public home yet: no invented URL goes into published metadata.
        assert urls is None, f"{name}: [project.urls] without repo_url and site_url in mkdocs.yml"
        return
    assert isinstance(urls, dict), f"{name}: [project.urls] is missing"
    assert urls.get("Source") == f"{repository}/tree/main/packages/{name}"
    assert urls.get("Changelog") == f"{repository}/blob/main/packages/{name}/CHANGELOG.md"
    assert urls.get("Issues") == f"{repository}/issues"
    assert urls.get("Documentation") == f"{docs_site}packages/{name}/"


def test_no_placeholder_url_is_published(root: Path) -> None:
    documents = [root / "mkdocs.yml", *sorted(root.glob("packages/*/pyproject.toml"))]
    for document in documents:
        assert "aegis-platform" not in document.read_text(), f"{document}: an invented URL"


def test_member_requires_other_members_with_compatible_ranges(member: Path, root: Path) -> None:
    members = load_members(root)
    for line in load_member(member).requirements():
        requirement = Requirement(line)
        dependency = members.get(normalise(requirement.name))
        if dependency is None:
            continue
        version = Version(dependency.version)
        lower = [s for s in requirement.specifier if s.operator == ">="]
        upper = [s for s in requirement.specifier if s.operator == "<"]
        assert len(lower) == 1, f"{line}: write >=X.Y,<next-breaking"
        assert len(upper) == 1, f"{line}: write >=X.Y,<next-breaking"
        assert version in requirement.specifier, f"{line} excludes {dependency.name} {version}"
        floor = Version(lower[0].version)
        breaking = f"{floor.major + 1}" if floor.major else f"0.{floor.minor + 1}"
        assert Version(upper[0].version) == Version(breaking), (
            f"{line}: the upper bound is the next breaking version, <{breaking}"
        )


def test_built_distributions_pass_twine_check_strict(built_dists: Path) -> None:
    files = sorted(str(p) for p in built_dists.iterdir())
    result = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", *files],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_installing_aegis_db_pulls_aegis_core_sqlalchemy_and_its_metrics_only(
    built_dists: Path,
) -> None:
    closure = install_closure(built_dists, ["aegis-db"])
    assert set(closure.aegis) == {"aegis-core", "aegis-db"}
    names = closure.third_party_names()
    assert names == {"pydantic", "sqlalchemy", "prometheus-client"}  # replica lag metrics
    assert not names & (KAFKA | REDIS | JWT)


def test_installing_aegis_core_pulls_pydantic_only(built_dists: Path) -> None:
    closure = install_closure(built_dists, ["aegis-core"])
    assert set(closure.aegis) == {"aegis-core"}
    assert closure.third_party_names() == {"pydantic"}


@pytest.mark.parametrize(
    ("root_requirement", "allowed"),
    [
        ("aegis-config", set[str]()),
        ("aegis-log", set[str]()),
        ("aegis-obs", set[str]()),
        ("aegis-auth", JWT),
        ("aegis-cache", REDIS),
        ("aegis-msg", KAFKA),
    ],
)
def test_a_member_pulls_no_kafka_redis_or_jwt_library_it_does_not_use(
    built_dists: Path, root_requirement: str, allowed: set[str]
) -> None:
    names = install_closure(built_dists, [root_requirement]).third_party_names()
    assert not names & (KAFKA | REDIS | JWT) - allowed, sorted(names)


def test_a_closure_extra_follows_member_extras(built_dists: Path) -> None:
    closure = install_closure(built_dists, ["aegis-db[sqlite]"])
    assert "aiosqlite" in closure.third_party_names()
    assert all(r.marker is None for r in closure.third_party)
    sqlalchemy = next(r for r in closure.third_party if r.name == "sqlalchemy")
    assert sqlalchemy.extras == {"asyncio"}


def test_a_missing_member_wheel_is_named(tmp_path: Path, built_dists: Path) -> None:
    for wheel in built_dists.glob("aegis_db-*.whl"):
        (tmp_path / wheel.name).write_bytes(wheel.read_bytes())
    with pytest.raises(LookupError, match="has no wheel of aegis-core"):
        install_closure(tmp_path, ["aegis-db"])

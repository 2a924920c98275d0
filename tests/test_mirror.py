"""tools/mirror.py without the network: what it selects for each target, and its errors."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
from members import load_members
from mirror import Target, every_member_with_every_extra, parse_platform, third_party_requirements

ROOT = Path(__file__).resolve().parent.parent
MEMBERS = load_members(ROOT)


def _names(requirements: list[str]) -> set[str]:
    return {r.split("[")[0].split(">")[0].split("=")[0].split("<")[0].lower() for r in requirements}


def test_a_member_brings_its_extras_and_aegis_core_never_an_aegis_name() -> None:
    target = Target("3.12", "manylinux_2_28_x86_64")
    found = third_party_requirements(MEMBERS, ["aegis-db[postgres]"], target.environment())
    assert {"sqlalchemy", "asyncpg", "pydantic", "prometheus-client"} <= _names(found)
    assert "aiosqlite" not in _names(found)  # the sqlite extra was not asked for
    assert not [r for r in found if r.startswith("aegis")]


def test_environment_markers_are_evaluated_for_the_target_not_this_machine() -> None:
    roots = every_member_with_every_extra(MEMBERS)
    linux = third_party_requirements(
        MEMBERS, roots, Target("3.12", "manylinux_2_28_x86_64").environment()
    )
    windows = third_party_requirements(MEMBERS, roots, Target("3.12", "win_amd64").environment())
    assert "uvloop" in _names(linux)
    assert "uvloop" not in _names(windows)
    assert all(";" not in r for r in linux)  # markers are evaluated, not passed on


def test_an_unknown_member_or_extra_names_what_exists() -> None:
    env = Target("3.12", None).environment()
    with pytest.raises(LookupError, match=r"aegis-dbx\b.*members: aegis-all"):
        third_party_requirements(MEMBERS, ["aegis-dbx"], env)
    with pytest.raises(LookupError, match=r"aegis-db has no extra postgress \(its extras: "):
        third_party_requirements(MEMBERS, ["aegis-db[postgress]"], env)


def test_a_platform_accepts_the_older_tags_its_machines_run() -> None:
    options = Target("3.12", "manylinux_2_28_x86_64").pip_platform()
    tags = options[1::2]
    assert tags[0] == "manylinux_2_28_x86_64"
    assert {"manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux1_x86_64"} <= set(tags)
    assert "manylinux_2_31_x86_64" not in tags
    assert set(options[::2]) == {"--platform"}
    assert Target("3.12", "musllinux_1_2_aarch64").pip_platform()[1::2] == [
        "musllinux_1_2_aarch64",
        "musllinux_1_1_aarch64",
    ]
    assert Target("3.12", None).pip_platform() == []


@pytest.mark.parametrize(
    ("tag", "uv"),
    [
        ("manylinux2014_x86_64", "x86_64-manylinux2014"),
        ("manylinux_2_28_aarch64", "aarch64-manylinux_2_28"),
        ("manylinux_2_30_x86_64", "x86_64-manylinux_2_28"),  # uv has no 2.29/2.30 target
        ("musllinux_1_2_x86_64", "x86_64-unknown-linux-musl"),
        ("win_amd64", "x86_64-pc-windows-msvc"),
        ("macosx_11_0_arm64", "aarch64-apple-darwin"),
    ],
)
def test_uv_resolves_for_the_matching_target(tag: str, uv: str) -> None:
    assert Target("3.12", tag).uv_platform() == ["--python-platform", uv]


def test_a_platform_tag_it_cannot_map_is_refused_with_examples() -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=r"e\.g\. manylinux2014_x86_64"):
        parse_platform("linux-x86_64")

"""The vendored browser bundles: recorded (version, licence, hashes), shipped in the wheels."""

from __future__ import annotations

import json
import shutil
import sys
import zipfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
import vendor
from members import normalise


def test_the_files_on_disk_are_the_recorded_ones() -> None:
    assert vendor.problems(vendor.load_bundles()) == []


def test_a_changed_file_or_version_is_reported(tmp_path: Path) -> None:
    (bundle,) = [b for b in vendor.load_bundles() if b.npm == "mermaid"]
    member = tmp_path / "aegis-schema"
    shutil.copytree(bundle.folder, member / bundle.target)
    shutil.copy(bundle.member / vendor.NOTES, member / vendor.NOTES)
    copy = vendor.Bundle(
        bundle.npm, bundle.version, bundle.license, member, bundle.target, bundle.files
    )
    assert vendor.problems([copy]) == []
    (copy.folder / "mermaid.min.js").write_text("alert(1)")
    older = vendor.Bundle(bundle.npm, "1.0.0", "MIT", member, bundle.target, bundle.files)
    found = vendor.problems([older])
    assert f"{copy.folder / vendor.RECORD}: version is not the manifest's" in found
    assert f"{copy.folder / 'mermaid.min.js'}: not the file recorded in VENDORED.json" in found
    assert f"{member / vendor.NOTES}: does not record mermaid 1.0.0" in found


def test_upgrade_rewrites_only_the_named_bundles_version(tmp_path: Path) -> None:
    manifest = tmp_path / "vendored.toml"
    shutil.copy(vendor.MANIFEST, manifest)
    vendor.set_version(manifest, "mermaid", "99.0.0")
    versions = {bundle.npm: bundle.version for bundle in vendor.load_bundles(manifest)}
    before = {bundle.npm: bundle.version for bundle in vendor.load_bundles()}
    assert versions == {**before, "mermaid": "99.0.0"}
    with pytest.raises(SystemExit, match="no version line"):
        vendor.set_version(manifest, "left-pad", "1.0.0")


def test_every_vendored_file_and_its_record_are_in_the_members_wheel(built_dists: Path) -> None:
    for bundle in vendor.load_bundles():
        stem = normalise(bundle.member.name).replace("-", "_")
        (wheel,) = built_dists.glob(f"{stem}-*.whl")
        inside = Path(*bundle.target.parts[1:])  # src/aegis/msg/... -> aegis/msg/...
        record = json.loads((bundle.folder / vendor.RECORD).read_text())
        with zipfile.ZipFile(wheel) as archive:
            shipped = json.loads(archive.read(str(inside / vendor.RECORD)))
            assert shipped == record
            for name in record["files"]:
                assert archive.read(str(inside / name)) == (bundle.folder / name).read_bytes()
            names = archive.namelist()
        package = "/".join(inside.parts[:2])
        static = [name for name in names if name.startswith(f"{package}/_static/")]
        assert static, f"{wheel.name} lacks the pages' own scripts ({package}/_static/)"

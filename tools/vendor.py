"""The browser bundles members ship (tools/vendored.toml): fetch them, move them on, check them.

Usage:
    python tools/vendor.py fetch      copy each bundle's files at its recorded version (npm pack)
    python tools/vendor.py upgrade    move each bundle to its newest release, then fetch
    python tools/vendor.py check      exit 1 unless the files on disk are the recorded ones

``fetch`` and ``upgrade`` need ``npm`` and the npm registry; ``check`` needs neither. Each bundle's
target folder gets ``VENDORED.json`` (package, version, licence, the tarball's integrity, the
SHA-256 of every file), shipped in the wheel, and its member gets ``VENDORED.md`` for people.
Standard library only: ``./dev lock --upgrade`` runs ``upgrade``.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import tarfile
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "tools" / "vendored.toml"
RECORD = "VENDORED.json"
NOTES = "VENDORED.md"


@dataclass(frozen=True)
class Bundle:
    """One npm package's files copied into a member."""

    npm: str
    version: str
    license: str
    member: Path
    target: Path
    files: tuple[tuple[str, str], ...]

    @property
    def folder(self) -> Path:
        """Where the files go: the member's ``target`` folder."""
        return self.member / self.target


def load_bundles(manifest: Path = MANIFEST) -> list[Bundle]:
    """The bundles of ``manifest``, member paths resolved against the repository root."""
    bundles = []
    for entry in tomllib.loads(manifest.read_text())["bundle"]:
        bundles.append(
            Bundle(
                npm=entry["npm"],
                version=entry["version"],
                license=entry["license"],
                member=manifest.parent.parent / entry["member"],
                target=Path(entry["target"]),
                files=tuple((source, name) for source, name in entry["files"]),
            )
        )
    return bundles


def sha256(path: Path) -> str:
    """The hex SHA-256 of a file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _npm(*args: str, cwd: Path | None = None) -> str:
    result = subprocess.run(["npm", *args], check=True, capture_output=True, text=True, cwd=cwd)
    return result.stdout


def fetch(bundle: Bundle) -> dict[str, object]:
    """Copy ``bundle``'s files at its version into its folder and write its records."""
    with tempfile.TemporaryDirectory() as scratch:
        packed = json.loads(
            _npm("pack", "--json", f"{bundle.npm}@{bundle.version}", cwd=Path(scratch))
        )[0]
        with tarfile.open(Path(scratch) / packed["filename"]) as archive:
            bundle.folder.mkdir(parents=True, exist_ok=True)
            for source, name in bundle.files:
                member = archive.extractfile(f"package/{source}")
                if member is None:
                    raise SystemExit(f"{bundle.npm}@{bundle.version} has no file {source}")
                (bundle.folder / name).write_bytes(member.read())
    record: dict[str, object] = {
        "package": bundle.npm,
        "version": bundle.version,
        "license": bundle.license,
        "integrity": packed["integrity"],
        "files": {name: sha256(bundle.folder / name) for _, name in bundle.files},
    }
    (bundle.folder / RECORD).write_text(json.dumps(record, indent=2) + "\n")
    return record


def write_notes(bundles: list[Bundle]) -> None:
    """Write each member's ``VENDORED.md`` from the records of its bundles."""
    by_member: dict[Path, list[Bundle]] = {}
    for bundle in bundles:
        by_member.setdefault(bundle.member, []).append(bundle)
    for member, mine in by_member.items():
        lines = [
            "# Vendored browser code",
            "",
            "Shipped inside the wheel so the HTML pages work with no network and no CDN.",
            "Written by `tools/vendor.py` (`./dev lock --upgrade` moves them to newer releases);",
            "do not edit these files by hand.",
            "",
            "| npm package | version | licence | files (in the wheel) |",
            "|---|---|---|---|",
        ]
        for bundle in mine:
            files = ", ".join(f"`{bundle.target / name}`" for _, name in bundle.files)
            lines.append(f"| `{bundle.npm}` | {bundle.version} | {bundle.license} | {files} |")
        lines += [
            "",
            f"Each folder's `{RECORD}` holds the npm tarball's integrity and every file's SHA-256.",
            "",
        ]
        (member / NOTES).write_text("\n".join(lines))


def newest(bundle: Bundle) -> str:
    """The version of ``bundle``'s package that npm's ``latest`` tag names."""
    return str(json.loads(_npm("view", "--json", bundle.npm, "dist-tags.latest")))


def set_version(manifest: Path, npm: str, version: str) -> None:
    """Rewrite the ``version`` line of ``npm``'s bundle in ``manifest``, keeping the rest."""
    text = manifest.read_text()
    pattern = re.compile(rf'(npm = "{re.escape(npm)}"\nversion = )"[^"]*"', flags=re.MULTILINE)
    updated, count = pattern.subn(rf'\g<1>"{version}"', text)
    if count != 1:
        raise SystemExit(f"{manifest}: no version line right after npm = {npm!r}")
    manifest.write_text(updated)


def problems(bundles: list[Bundle]) -> list[str]:
    """What differs between the manifest, the records and the files on disk."""
    found = []
    for bundle in bundles:
        record_path = bundle.folder / RECORD
        if not record_path.is_file():
            found.append(f"{record_path}: missing (python tools/vendor.py fetch)")
            continue
        record = json.loads(record_path.read_text())
        for key in ("package", "version", "license"):
            if record.get(key) != getattr(bundle, "npm" if key == "package" else key):
                found.append(f"{record_path}: {key} is not the manifest's")
        expected = {name for _, name in bundle.files}
        if set(record.get("files", {})) != expected:
            found.append(f"{record_path}: lists other files than the manifest")
        for name, digest in record.get("files", {}).items():
            path = bundle.folder / name
            if not path.is_file() or sha256(path) != digest:
                found.append(f"{path}: not the file recorded in {RECORD}")
        notes = bundle.member / NOTES
        row = f"| `{bundle.npm}` | {bundle.version} | {bundle.license} |"
        if not notes.is_file() or row not in notes.read_text():
            found.append(f"{notes}: does not record {bundle.npm} {bundle.version}")
    return found


def main(argv: list[str]) -> int:
    """Run ``fetch``, ``upgrade`` or ``check``; see the module docstring."""
    if len(argv) != 1 or argv[0] not in {"fetch", "upgrade", "check"}:
        print(__doc__, file=sys.stderr)
        return 2
    bundles = load_bundles()
    if argv[0] == "check":
        found = problems(bundles)
        print(*found, sep="\n", file=sys.stderr) if found else print("vendored bundles: ok")
        return 1 if found else 0
    if argv[0] == "upgrade":
        for bundle in bundles:
            version = newest(bundle)
            if version != bundle.version:
                print(f"{bundle.npm}: {bundle.version} -> {version}")
                set_version(MANIFEST, bundle.npm, version)
        bundles = load_bundles()
    for bundle in bundles:
        record = fetch(bundle)
        print(f"{bundle.npm} {record['version']} ({record['license']}) -> {bundle.folder}")
    write_notes(bundles)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

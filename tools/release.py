"""Release one aegis member: version, changelog, public-API check, commit and tag.

Usage:
  python tools/release.py bump PACKAGE VERSION [--date YYYY-MM-DD]   (./dev release)
  python tools/release.py verify-tag TAG       (release.yml: prints package=, version=, member=)
  python tools/release.py notes PACKAGE VERSION     (release.yml: the CHANGELOG section)

PACKAGE is `aegis-db` or `db`. Tags are `aegis-<name>-v<version>`. A member whose public names
(tools/public_api.py) lost something since its last release tag needs a breaking bump: the
major version, or the minor while the major is 0 (the members' `>=0.1,<0.2` ranges treat a 0.x
minor as breaking, like Cargo). Standard library only, so a release needs no development
environment.
"""

from __future__ import annotations

import argparse
import datetime
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from public_api import public_names, sources_at, sources_on_disk

_VERSION = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:(a|b|rc)(0|[1-9]\d*))?$")
_PRE_ORDER = {"a": 0, "b": 1, "rc": 2}
_UNRELEASED = re.compile(r"^## \[Unreleased\][^\n]*\n(?P<body>.*?)(?=^## |\Z)", re.M | re.S)
_TAG = re.compile(r"^(?P<package>aegis-[a-z0-9]+(?:-[a-z0-9]+)*)-v(?P<version>.+)$")


class ReleaseError(Exception):
    """A release that must not happen, with what to do instead."""


@dataclass(frozen=True, order=True)
class Version:
    """A release version: ``MAJOR.MINOR.PATCH`` with an optional ``aN``/``bN``/``rcN``."""

    major: int
    minor: int
    patch: int
    # A final release sorts after its pre-releases: (3, 0) is above any (pre, n).
    pre: tuple[int, int] = (3, 0)

    @classmethod
    def parse(cls, text: str) -> Version:
        """Parse ``1.2.3`` or ``1.2.3rc1``; raise ReleaseError for anything else."""
        match = _VERSION.match(text)
        if match is None:
            raise ReleaseError(f"{text!r} is not a version: use MAJOR.MINOR.PATCH, e.g. 1.4.0")
        major, minor, patch, kind, number = match.groups()
        pre = (_PRE_ORDER[kind], int(number)) if kind else (3, 0)
        return cls(int(major), int(minor), int(patch), pre)

    def __str__(self) -> str:
        kind = {v: k for k, v in _PRE_ORDER.items()}.get(self.pre[0])
        suffix = f"{kind}{self.pre[1]}" if kind else ""
        return f"{self.major}.{self.minor}.{self.patch}{suffix}"

    def is_breaking_bump_from(self, last: Version) -> bool:
        """Whether this version may break ``last``'s users (major, or minor under 1.0)."""
        if last.major == 0:
            return (self.major, self.minor) > (0, last.minor)
        return self.major > last.major

    def is_feature_bump_from(self, last: Version) -> bool:
        """Whether this version may add to ``last``'s public API."""
        return last.major == 0 or (self.major, self.minor) > (last.major, last.minor)


@dataclass(frozen=True)
class Member:
    """One workspace member and the file that holds its version."""

    name: str
    path: Path

    @classmethod
    def find(cls, repo: Path, package: str) -> Member:
        """The member called ``aegis-db`` or ``db`` in ``repo/packages``."""
        name = package if package.startswith("aegis-") else f"aegis-{package}"
        path = repo / "packages" / name
        if not (path / "pyproject.toml").is_file():
            known = sorted(p.parent.name for p in (repo / "packages").glob("*/pyproject.toml"))
            raise ReleaseError(f"no member {name} in packages/ (members: {', '.join(known)})")
        return cls(name, path)

    @property
    def version_file(self) -> Path:
        """``src/aegis/X/__about__.py``, or pyproject.toml for a static version (aegis-all)."""
        pyproject = tomllib.loads((self.path / "pyproject.toml").read_text())
        path = pyproject.get("tool", {}).get("hatch", {}).get("version", {}).get("path")
        return self.path / (path if isinstance(path, str) else "pyproject.toml")

    @property
    def has_code(self) -> bool:
        """False for a metadata-only member such as aegis-all."""
        return (self.path / "src").is_dir()

    def version(self) -> Version:
        """The version the member's files declare now."""
        match = _version_line(self.version_file).search(self.version_file.read_text())
        if match is None:
            raise ReleaseError(f"{self.version_file}: no version found")
        return Version.parse(match.group("version"))

    def write_version(self, version: Version) -> None:
        """Replace the version in the member's version file."""
        text = self.version_file.read_text()
        pattern = _version_line(self.version_file)
        text = pattern.sub(lambda m: f"{m.group('head')}{version}{m.group('tail')}", text, 1)
        self.version_file.write_text(text)

    def tag(self, version: Version) -> str:
        """The release tag of ``version``."""
        return f"{self.name}-v{version}"


def _version_line(path: Path) -> re.Pattern[str]:
    key = "version" if path.name == "pyproject.toml" else "__version__"
    return re.compile(rf'^(?P<head>{key} = ")(?P<version>[^"]+)(?P<tail>")', re.M)


def move_unreleased(changelog: str, version: Version, date: datetime.date) -> str:
    """Put the Unreleased section's entries under ``## [version] - date``; leave it empty."""
    match = _UNRELEASED.search(changelog)
    if match is None:
        raise ReleaseError("CHANGELOG.md has no '## [Unreleased]' section")
    body = match.group("body").strip()
    if not body:
        raise ReleaseError(
            "nothing under '## [Unreleased]' in CHANGELOG.md: say what this release changes first"
        )
    section = f"## [Unreleased]\n\n## [{version}] - {date.isoformat()}\n\n{body}\n\n"
    return changelog[: match.start()] + section + changelog[match.end() :]


def release_notes(changelog: str, version: Version) -> str:
    """The entries of ``## [version]`` in a changelog."""
    pattern = re.compile(rf"^## \[{re.escape(str(version))}\][^\n]*\n(?P<body>.*?)(?=^## |\Z)")
    match = re.compile(pattern.pattern, re.M | re.S).search(changelog)
    if match is None:
        raise ReleaseError(f"CHANGELOG.md has no section '## [{version}]'")
    return match.group("body").strip() + "\n"


def git(repo: Path, *args: str) -> str:
    """Run git in ``repo`` and return its output; a failure becomes a ReleaseError."""
    result = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ReleaseError(f"git {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


def last_release(repo: Path, member: Member) -> Version | None:
    """The highest version tagged ``<member>-v*``, or None before the first release."""
    versions = []
    for tag in git(repo, "tag", "--list", f"{member.name}-v*").split():
        try:
            versions.append(Version.parse(tag.removeprefix(f"{member.name}-v")))
        except ReleaseError:
            continue
    return max(versions, default=None)


def check_public_api(repo: Path, member: Member, last: Version, version: Version) -> list[str]:
    """Compare the public names with the last release; return the report lines.

    Raises:
        ReleaseError: names were removed without a breaking bump, or added without a feature one.
    """
    before = public_names(sources_at(member.tag(last), member.path, repo))
    now = public_names(sources_on_disk(member.path))
    removed, added = sorted(before - now), sorted(now - before)
    report = [f"  - {name}" for name in removed] + [f"  + {name}" for name in added]
    if removed and not version.is_breaking_bump_from(last):
        raise ReleaseError(
            f"{member.name} {version} removes public names that {last} has:\n"
            + "\n".join(f"  - {name}" for name in removed)
            + f"\nthat breaks its users: release {_next_breaking(last)} instead, "
            "or restore the names (deprecate first)"
        )
    if added and not version.is_feature_bump_from(last):
        raise ReleaseError(
            f"{member.name} {version} adds public names: release "
            f"{last.major}.{last.minor + 1}.0 instead of a patch"
        )
    return report


def _next_breaking(last: Version) -> Version:
    return Version(0, last.minor + 1, 0) if last.major == 0 else Version(last.major + 1, 0, 0)


def dependents_left_behind(repo: Path, member: Member, version: Version) -> list[str]:
    """Members whose requirement on ``member`` excludes ``version`` (informational)."""
    name = re.compile(rf"^{re.escape(member.name)}(?![\w.-])(?:\[[^\]]*\])?(?P<spec>[^;]*)")
    found = []
    for pyproject in sorted((repo / "packages").glob("*/pyproject.toml")):
        project = tomllib.loads(pyproject.read_text()).get("project", {})
        extras = project.get("optional-dependencies", {}).values()
        for requirement in [*project.get("dependencies", []), *(r for e in extras for r in e)]:
            match = name.match(requirement)
            if match and not _in_range(version, match.group("spec")):
                found.append(f"{pyproject.parent.name} requires {requirement}")
    return sorted(set(found))


_CLAUSE = re.compile(r"^\s*(>=|<=|==|!=|<|>)\s*(\d+(?:\.\d+){0,2})\s*$")


def _in_range(version: Version, spec: str) -> bool:
    for clause in filter(None, spec.split(",")):
        match = _CLAUSE.match(clause)
        if match is None:  # ~= and wildcards: members write plain >=/< ranges
            continue
        operator, bound = match.groups()
        major, minor, patch = [*(int(p) for p in bound.split(".")), 0, 0][:3]
        other = Version(major, minor, patch)
        holds = {
            ">=": version >= other,
            "<=": version <= other,
            "==": version == other,
            "!=": version != other,
            "<": version < other,
            ">": version > other,
        }[operator]
        if not holds:
            return False
    return True


def bump(repo: Path, package: str, version_text: str, date: datetime.date) -> list[str]:
    """Release ``package`` at ``version_text``: edit, check, commit and tag. Return the report."""
    member = Member.find(repo, package)
    version = Version.parse(version_text)
    tag = member.tag(version)
    if git(repo, "tag", "--list", tag).strip():
        raise ReleaseError(f"tag {tag} exists already: pick the next version")
    dirty = git(repo, "status", "--porcelain", "--", str(member.path.relative_to(repo)))
    if dirty.strip():
        raise ReleaseError(
            f"uncommitted changes in packages/{member.name}: commit them first, so that the "
            f"tag marks exactly what is released\n{dirty.rstrip()}"
        )
    current, last = member.version(), last_release(repo, member)
    if version < current:
        raise ReleaseError(f"{member.name} is at {current} already: {version} would go back")
    if last is not None and version <= last:
        raise ReleaseError(f"{member.name} {last} is released: {version} must be higher")
    report = [f"{member.name}: {current} -> {version} (last release: {last or 'none'})"]
    if last is not None and member.has_code:
        changes = check_public_api(repo, member, last, version)
        report += ["public API since " + member.tag(last) + ":", *(changes or ["  unchanged"])]
    changelog = member.path / "CHANGELOG.md"
    new_changelog = move_unreleased(changelog.read_text(), version, date)
    member.write_version(version)
    changelog.write_text(new_changelog)
    files = [str(p.relative_to(repo)) for p in (member.version_file, changelog)]
    git(repo, "commit", "--quiet", "-m", f"{member.name} {version}", "--", *files)
    git(repo, "tag", "-a", tag, "-m", f"{member.name} {version}")
    report += [
        f"warning: {line}, which excludes {version}"
        for line in dependents_left_behind(repo, member, version)
    ]
    report.append(f"committed and tagged {tag}; publish with: git push origin HEAD {tag}")
    return report


def verify_tag(repo: Path, tag: str) -> list[str]:
    """Check that ``tag`` names a member whose files declare that version."""
    match = _TAG.match(tag)
    if match is None:
        raise ReleaseError(f"{tag!r} is not a release tag: expected aegis-<name>-v<version>")
    member = Member.find(repo, match.group("package"))
    version = Version.parse(match.group("version"))
    if member.version() != version:
        raise ReleaseError(
            f"tag {tag} says {version} but {member.version_file.relative_to(repo)} "
            f"says {member.version()}"
        )
    release_notes((member.path / "CHANGELOG.md").read_text(), version)
    return [
        f"package={member.name}",
        f"version={version}",
        f"member={member.path.relative_to(repo)}",
    ]


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; print a ReleaseError as `error: ...` and return 1."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    bump_parser = commands.add_parser("bump")
    bump_parser.add_argument("package")
    bump_parser.add_argument("version")
    bump_parser.add_argument(
        "--date", type=datetime.date.fromisoformat, default=datetime.date.today()
    )
    verify_parser = commands.add_parser("verify-tag")
    verify_parser.add_argument("tag")
    notes_parser = commands.add_parser("notes")
    notes_parser.add_argument("package")
    notes_parser.add_argument("version")
    args = parser.parse_args(argv)
    try:
        repo = Path(git(Path.cwd(), "rev-parse", "--show-toplevel").strip())
        if args.command == "bump":
            lines = bump(repo, args.package, args.version, args.date)
        elif args.command == "verify-tag":
            lines = verify_tag(repo, args.tag)
        else:
            member = Member.find(repo, args.package)
            lines = [
                release_notes(
                    (member.path / "CHANGELOG.md").read_text(), Version.parse(args.version)
                )
            ]
    except ReleaseError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print("\n".join(line.rstrip("\n") for line in lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Download the third-party wheels that installing aegis members needs, for a private index.

Usage: python tools/mirror.py DIR [--member 'aegis-db[postgres]' ..] [--python 3.12 ..]
                              [--platform manylinux2014_x86_64 ..] [--newest] [--index-url URL]

An index that serves the aegis packages must serve what they require too: an install from that
index alone never reaches public PyPI, so without these wheels it stops at
``No matching distribution found for sqlalchemy[asyncio]...``. For each Python version and
platform asked for (default: this interpreter on this machine) the tool follows the chosen
members (default: every member with every extra) through their pyproject.toml files, resolves
their third-party requirements for that target with ``uv pip compile`` (at the versions of
tools/requirements.lock, the ones the workspace is tested with, unless --newest), and downloads
the wheels with ``pip download --no-deps --only-binary=:all:`` into DIR. No aegis-* name is ever
resolved or downloaded: those come from the workspace (./dev build, ./dev publish).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement

from members import Member, load_members, normalise

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "tools" / "requirements.lock"

_MANYLINUX_LEGACY = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}
_UV_GLIBC_MINORS = [17, 28, *range(31, 41)]
_PLATFORM = re.compile(
    r"^(?:(?P<legacy>manylinux1|manylinux2010|manylinux2014)"
    r"|manylinux_(?P<glibc>2_\d+)|musllinux_(?P<musl>1_\d+)|macosx_(?P<macos>\d+_\d+)"
    r"|(?P<plain>linux|win))_(?P<arch>x86_64|aarch64|amd64|arm64|universal2)$"
)


@dataclass(frozen=True)
class Target:
    """One Python version on one platform (``platform`` None: this machine)."""

    python: str
    platform: str | None

    def __str__(self) -> str:
        return f"Python {self.python} on {self.platform or 'this machine'}"

    def environment(self) -> dict[str, str]:
        """The PEP 508 marker environment of the target, to evaluate the members' markers."""
        env: dict[str, str] = {k: str(v) for k, v in default_environment().items()}
        env.update(python_version=self.python, python_full_version=f"{self.python}.0")
        if self.platform is None:
            return env
        system = _system(self.platform)
        machine = self.platform.rsplit("_", 1)[-1]
        if self.platform.endswith("x86_64"):
            machine = "x86_64"
        env.update(
            sys_platform={"Linux": "linux", "Windows": "win32", "Darwin": "darwin"}[system],
            platform_system=system,
            os_name="nt" if system == "Windows" else "posix",
            platform_machine={"amd64": "AMD64"}.get(machine, machine),
            platform_python_implementation="CPython",
            implementation_name="cpython",
        )
        return env

    def uv_platform(self) -> list[str]:
        """The ``--python-platform`` of uv for the target (nothing: this machine)."""
        if self.platform is None:
            return []
        match = _platform_match(self.platform)
        arch = {"amd64": "x86_64", "arm64": "aarch64", "universal2": "aarch64"}.get(
            match["arch"], match["arch"]
        )
        if match["legacy"] or match["glibc"]:
            glibc = _glibc(match["legacy"], match["glibc"])
            # uv knows manylinux2014 (2.17), 2.28, and 2.31 to 2.40: the newest one not newer
            supported = [m for m in _UV_GLIBC_MINORS if m <= glibc[1]] or [_UV_GLIBC_MINORS[0]]
            name = (
                f"{arch}-manylinux2014"
                if supported[-1] == _UV_GLIBC_MINORS[0]
                else f"{arch}-manylinux_2_{supported[-1]}"
            )
        elif match["musl"]:
            name = f"{arch}-unknown-linux-musl"
        elif match["macos"]:
            name = f"{arch}-apple-darwin"
        elif match["plain"] == "win":
            name = {"x86_64": "x86_64-pc-windows-msvc", "aarch64": "aarch64-pc-windows-msvc"}[arch]
        else:
            name = f"{arch}-unknown-linux-gnu"
        return ["--python-platform", name]

    def pip_platform(self) -> list[str]:
        """The ``--platform`` options of pip: the tag and every older one the target also runs.

        pip matches each --platform tag exactly, and a wheel built for manylinux_2_17 is tagged
        only with that (and its alias): a manylinux_2_28 machine runs it, so a mirror for that
        machine must accept it too, as pip does for the interpreter it runs on.
        """
        if self.platform is None:
            return []
        match = _platform_match(self.platform)
        arch = match["arch"]
        tags = [self.platform]
        if match["legacy"] or match["glibc"]:
            newest = _glibc(match["legacy"], match["glibc"])
            for minor in range(newest[1], 4, -1):
                tags.append(f"manylinux_2_{minor}_{arch}")
            tags += [f"{old}_{arch}" for old, v in _MANYLINUX_LEGACY.items() if v <= newest]
        elif match["musl"]:
            newest_musl = int(match["musl"].split("_")[1])
            tags += [f"musllinux_1_{minor}_{arch}" for minor in range(newest_musl, 0, -1)]
        elif match["macos"]:
            major = int(match["macos"].split("_")[0])
            arches = [arch, "universal2"] if arch != "universal2" else ["arm64", "x86_64"]
            for version in range(major, 10, -1):
                tags += [f"macosx_{version}_0_{a}" for a in arches]
            if arch in {"x86_64", "universal2"}:
                for minor in range(16, 8, -1):
                    tags += [f"macosx_10_{minor}_{a}" for a in [*arches, "intel"]]
        return [option for tag in dict.fromkeys(tags) for option in ("--platform", tag)]


def _platform_match(tag: str) -> re.Match[str]:
    match = _PLATFORM.match(tag)
    if match is None:
        raise ValueError(f"not a platform tag: {tag!r}")
    return match


def _glibc(legacy: str | None, glibc: str | None) -> tuple[int, int]:
    if legacy:
        return _MANYLINUX_LEGACY[legacy]
    major, minor = (glibc or "").split("_")
    return int(major), int(minor)


def _system(platform_tag: str) -> str:
    if platform_tag.startswith("win"):
        return "Windows"
    if platform_tag.startswith("macosx"):
        return "Darwin"
    return "Linux"


def parse_platform(tag: str) -> str:
    """Check a pip platform tag (``manylinux2014_x86_64``, ``win_amd64``, ``macosx_11_0_arm64``)."""
    if _PLATFORM.match(tag) is None:
        raise argparse.ArgumentTypeError(
            f"{tag!r} is not a platform tag this tool knows: use one as wheel names spell it, "
            "e.g. manylinux2014_x86_64, manylinux_2_28_aarch64, musllinux_1_2_x86_64, "
            "win_amd64, macosx_11_0_arm64"
        )
    return tag


def parse_python(version: str) -> str:
    """Check a Python version given as MAJOR.MINOR."""
    if re.fullmatch(r"3\.\d{1,2}", version) is None:
        raise argparse.ArgumentTypeError(
            f"--python takes MAJOR.MINOR such as 3.12, not {version!r}"
        )
    return version


def third_party_requirements(
    members: dict[str, Member], roots: list[str], environment: dict[str, str]
) -> list[str]:
    """The third-party requirements of ``roots`` (``aegis-db[postgres]``, ...) on one target.

    aegis-* requirements are followed through the members' pyproject.toml files with the
    extras they ask for; environment markers are evaluated for the target.

    Raises:
        LookupError: a root or a requirement names no member, or an extra the member lacks.
    """
    found: dict[str, None] = {}
    seen: dict[str, set[str]] = {}
    pending = [Requirement(root) for root in roots]
    while pending:
        requirement = pending.pop()
        if requirement.marker is not None and not requirement.marker.evaluate(environment):
            continue
        name = normalise(requirement.name)
        if not name.startswith("aegis"):
            requirement.marker = None
            found.setdefault(str(requirement))
            continue
        member = members.get(name)
        if member is None:
            raise LookupError(
                f"{requirement} is not a member of this workspace "
                f"(members: {', '.join(sorted(members))})"
            )
        optional: dict[str, list[str]] = member.project.get("optional-dependencies", {})  # type: ignore[assignment]
        unknown = set(requirement.extras) - set(optional)
        if unknown:
            raise LookupError(
                f"{member.name} has no extra {', '.join(sorted(unknown))} "
                f"(its extras: {', '.join(sorted(optional)) or 'none'})"
            )
        extras = set(requirement.extras)
        if name in seen and extras <= seen[name]:
            continue
        seen[name] = seen.get(name, set()) | extras
        dependencies: list[str] = member.project.get("dependencies", [])  # type: ignore[assignment]
        lines = [*dependencies, *(line for extra in sorted(extras) for line in optional[extra])]
        pending.extend(Requirement(line) for line in lines)
    return sorted(found, key=str.lower)


def every_member_with_every_extra(members: dict[str, Member]) -> list[str]:
    """The default selection: each member with all its extras."""
    roots = []
    for member in members.values():
        extras = sorted(member.project.get("optional-dependencies", {}) or {})  # type: ignore[call-overload]
        roots.append(f"{member.name}[{','.join(extras)}]" if extras else member.name)
    return roots


def _tool(name: str) -> str:
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        raise SystemExit(f"{name} not found beside {sys.executable} or on PATH (./dev setup)")
    return found


def resolve(
    target: Target, requirements: list[str], *, newest: bool, index_url: str | None
) -> list[str]:
    """Pin ``requirements`` and everything they pull in for ``target``, wheels only.

    Raises:
        SystemExit: no set of versions with wheels for the target satisfies them.
    """
    with tempfile.TemporaryDirectory() as scratch:
        wanted = Path(scratch) / "requirements.in"
        pinned = Path(scratch) / "requirements.txt"
        wanted.write_text("\n".join(requirements) + "\n")
        compile_ = [_tool("uv"), "pip", "compile", "--quiet", "--no-header", "--no-annotate"]
        compile_ += ["--only-binary", ":all:", "--python-version", target.python]
        compile_ += target.uv_platform()
        if not newest:
            compile_ += ["--constraint", str(LOCK)]
        if index_url:
            compile_ += ["--default-index", index_url]
        resolved = subprocess.run(
            [*compile_, "--output-file", str(pinned), str(wanted)],
            capture_output=True,
            text=True,
            check=False,
        )
        if resolved.returncode != 0:
            hint = "" if newest else " (or --newest: the newest versions the ranges allow)"
            raise SystemExit(
                f"cannot resolve the requirements for {target} with wheels only{hint}:\n"
                + resolved.stderr
            )
        return [line for line in pinned.read_text().splitlines() if line and line[0] != "#"]


def download(target: Target, pins: list[str], dest: Path, *, index_url: str | None) -> None:
    """Download the wheel of each pin for ``target`` into ``dest`` (kept if already there)."""
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"]
    command += ["--only-binary=:all:", "--dest", str(dest)]
    command += ["--python-version", target.python, "--implementation", "cp"]
    command += target.pip_platform()
    if index_url:
        command += ["--index-url", index_url]
    if subprocess.run([*command, *pins], check=False).returncode != 0:
        raise SystemExit(f"pip download failed for {target} (see above)")


def main(argv: list[str] | None = None) -> int:
    """Mirror the third-party wheels of the chosen members into DIR."""
    parser = argparse.ArgumentParser(
        prog="./dev mirror",
        description="Download the third-party wheels of aegis members into DIR for a private "
        "index (never an aegis-* distribution).",
    )
    parser.add_argument("dir", type=Path, help="the directory to fill (created if missing)")
    parser.add_argument(
        "--member",
        action="append",
        default=[],
        metavar="REQ",
        help="a member, with extras: 'aegis-db[postgres]' (repeat; default: every member "
        "with every extra)",
    )
    parser.add_argument(
        "--python",
        action="append",
        default=[],
        type=parse_python,
        metavar="X.Y",
        help="a Python version to serve (repeat; default: this interpreter's)",
    )
    parser.add_argument(
        "--platform",
        action="append",
        default=[],
        type=parse_platform,
        metavar="TAG",
        help="a wheel platform tag to serve: manylinux2014_x86_64, manylinux_2_28_aarch64, "
        "musllinux_1_2_x86_64, win_amd64, macosx_11_0_arm64 (repeat; default: this machine)",
    )
    parser.add_argument(
        "--newest",
        action="store_true",
        help="the newest versions the members' ranges allow, instead of tools/requirements.lock's",
    )
    parser.add_argument(
        "--index-url", help="the upstream to download from (default: pip's and uv's own settings)"
    )
    args = parser.parse_args(argv)
    members = load_members(ROOT)
    roots = args.member or every_member_with_every_extra(members)
    pythons = args.python or [f"{sys.version_info.major}.{sys.version_info.minor}"]
    platforms: list[str | None] = args.platform or [None]
    args.dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    targets = [Target(python, tag) for python in pythons for tag in platforms]
    try:
        wanted = {t: third_party_requirements(members, roots, t.environment()) for t in targets}
    except LookupError as error:
        parser.error(str(error))
    chosen = ", ".join(args.member) or "every member with every extra"
    # Resolving waits on the index, not the CPU: the targets resolve side by side.
    with ThreadPoolExecutor(max_workers=len(targets)) as pool:
        pinned = {
            t: pool.submit(resolve, t, wanted[t], newest=args.newest, index_url=args.index_url)
            for t in targets
        }
        for target in targets:
            pins = pinned[target].result()
            print(f"==> {target}: {chosen}: {len(pins)} distributions", flush=True)
            download(target, pins, args.dir, index_url=args.index_url)
    wheels = sorted(args.dir.glob("*.whl"))
    size = sum(w.stat().st_size for w in wheels) / 1e6
    elapsed = time.monotonic() - started
    print(f"==> {len(wheels)} wheels, {size:.1f} MB in {args.dir} ({elapsed:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

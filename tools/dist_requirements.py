"""What installing some aegis distributions pulls in, read from the built wheels' metadata.

Usage: python tools/dist_requirements.py DIST_DIR 'aegis-db[sqlite]' aegis-auth ...

Prints the third-party requirements (one per line) that installing the named distributions
needs, following aegis-* requirements and their extras through the wheels in DIST_DIR. A private
index that serves aegis packages must serve these too (mirror them with `pip download -r`),
because an install from that index alone never reaches public PyPI.
"""

from __future__ import annotations

import argparse
import zipfile
from dataclasses import dataclass, field
from email.parser import Parser
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name


def wheel_metadata(wheel: Path) -> tuple[str, list[str]]:
    """Return the distribution name and the ``Requires-Dist`` lines of a wheel."""
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        metadata = Parser().parsestr(archive.read(name).decode())
    return canonicalize_name(metadata["Name"]), metadata.get_all("Requires-Dist") or []


@dataclass
class Closure:
    """The aegis distributions (with the extras asked of them) and the third-party requirements."""

    aegis: dict[str, set[str]] = field(default_factory=dict)
    third_party: list[Requirement] = field(default_factory=list)

    def third_party_names(self) -> set[str]:
        """The normalised names of the third-party requirements."""
        return {canonicalize_name(r.name) for r in self.third_party}


def install_closure(dist_dir: Path, roots: list[str]) -> Closure:
    """Follow ``roots`` (PEP 508 strings such as ``aegis-db[sqlite]``) through the wheels.

    Raises:
        LookupError: an aegis-* requirement has no wheel in ``dist_dir``.
    """
    wheels = dict(wheel_metadata(w) for w in sorted(dist_dir.glob("*.whl")))
    closure = Closure()
    pending = [Requirement(r) for r in roots]
    while pending:
        requirement = pending.pop()
        name = canonicalize_name(requirement.name)
        if not name.startswith("aegis"):
            if str(requirement) not in {str(r) for r in closure.third_party}:
                closure.third_party.append(requirement)
            continue
        if name not in wheels:
            raise LookupError(f"{requirement} is needed but {dist_dir} has no wheel of {name}")
        seen = closure.aegis.get(name)
        if seen is not None and set(requirement.extras) <= seen:
            continue
        extras = (seen or set()) | set(requirement.extras)
        closure.aegis[name] = extras
        for line in wheels[name]:
            dependency = Requirement(line)
            active = dependency.marker is None or any(
                dependency.marker.evaluate({"extra": extra}) for extra in {"", *extras}
            )
            if active:
                # Evaluated here, for this interpreter and these extras: the printed line must not
                # carry an `extra == ...` marker, which pip would read as false.
                dependency.marker = None
                pending.append(dependency)
    closure.third_party.sort(key=str)
    return closure


def main() -> int:
    """Print the third-party requirements of the named distributions."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("dist_dir", type=Path)
    parser.add_argument("requirements", nargs="+")
    args = parser.parse_args()
    closure = install_closure(args.dist_dir, args.requirements)
    print("\n".join(str(r) for r in closure.third_party))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The workspace lock (tools/requirements.lock) against what an environment has installed.

Usage:
    python tools/lock.py check LOCK    exit 1 unless this interpreter has exactly the lock's pins
    python tools/lock.py drift LOCK    print where this interpreter differs from the lock

The lock is ``uv pip compile --universal`` output: one ``name==version ; marker`` line per pin,
with hashes. A pin counts for this interpreter when its marker holds here. Local projects
(the editable members and sample services) are not pinned and not compared. ``./dev test
--latest`` prints the drift, so a failing scheduled run names the upstream releases it met.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from importlib.metadata import distributions
from pathlib import Path

from packaging.markers import Marker

_PIN = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s;\\]+)\s*(?:;(?P<marker>[^\\]+))?"
)


@dataclass(frozen=True)
class Pin:
    """One pinned requirement of the lock."""

    name: str
    version: str
    marker: str | None

    def applies(self) -> bool:
        """Whether this pin's environment marker holds for the running interpreter."""
        return self.marker is None or Marker(self.marker).evaluate()


def normalise(name: str) -> str:
    """A distribution name as PEP 503 compares it."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(path: Path) -> list[Pin]:
    """The pins of a lock file, in file order (a name may appear once per marker)."""
    pins = []
    for line in path.read_text().splitlines():
        match = _PIN.match(line)
        if match:
            marker = match["marker"].strip() if match["marker"] else None
            pins.append(Pin(normalise(match["name"]), match["version"], marker))
    return pins


def locked_here(path: Path) -> dict[str, str]:
    """The version the lock pins for each distribution this interpreter should have."""
    return {pin.name: pin.version for pin in read_lock(path) if pin.applies()}


def installed_here() -> dict[str, str]:
    """The version of every installed distribution that is not installed from a local folder."""
    found = {}
    for dist in distributions():
        direct_url = json.loads(dist.read_text("direct_url.json") or "{}")
        if direct_url.get("url", "").startswith("file:") and "dir_info" in direct_url:
            continue  # an editable (or folder) install of a local project
        found[normalise(dist.metadata["Name"])] = dist.version
    return found


def differences(locked: dict[str, str], installed: dict[str, str]) -> list[str]:
    """One line per distribution whose installed version is not the locked one."""
    lines = []
    for name in sorted(locked.keys() | installed.keys()):
        want, have = locked.get(name), installed.get(name)
        if want != have:
            lines.append(f"{name:<32} lock {want or '-':<14} installed {have or '-'}")
    return lines


def main(argv: list[str]) -> int:
    """Run the ``check`` or ``drift`` command; see the module docstring."""
    if len(argv) != 2 or argv[0] not in {"check", "drift"}:  # command and path
        print(__doc__, file=sys.stderr)
        return 2
    command, lock = argv[0], Path(argv[1])
    lines = differences(locked_here(lock), installed_here())
    if command == "check":
        if lines:
            print(f"this environment differs from {lock}:", *lines, sep="\n", file=sys.stderr)
            return 1
        return 0
    if lines:
        print(f"installed versions that differ from {lock}:", *lines, sep="\n")
    else:
        print(f"every installed version is the one in {lock}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

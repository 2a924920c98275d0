"""Print each requirement (one per line on stdin) with the version this interpreter has.

./dev test --lowest runs it with .venv-lowest's Python, so the table shows the lowest versions
the members' tests ran against.
"""

from __future__ import annotations

import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from members import requirement_name


def report(requirements: list[str]) -> list[str]:
    """One ``name  installed  requirement`` line per distinct requirement."""
    lines = []
    for requirement in sorted(set(requirements), key=str.lower):
        name = requirement_name(requirement)
        try:
            installed = version(name)
        except PackageNotFoundError:
            installed = "-"
        lines.append(f"{name:<28} {installed:<12} {requirement}")
    return lines


if __name__ == "__main__":
    print("\n".join(report([line.strip() for line in sys.stdin if line.strip()])))

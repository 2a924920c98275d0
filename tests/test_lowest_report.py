"""The table ./dev test --lowest prints: each requirement with the version that was tested."""

from __future__ import annotations

import sys
from importlib.metadata import version
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
from lowest_report import report


def test_each_distinct_requirement_is_shown_with_the_installed_version() -> None:
    lines = report(["pytest>=8", "pytest>=8", "Not_Installed_Dist>=1"])
    assert [line.split() for line in lines] == [
        ["not-installed-dist", "-", "Not_Installed_Dist>=1"],
        ["pytest", version("pytest"), "pytest>=8"],
    ]

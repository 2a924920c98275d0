"""The per-package coverage table that ./dev test prints and enforces."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

TOOL = Path(__file__).resolve().parent.parent / "tools" / "coverage_summary.py"


def _report(tmp_path: Path, files: dict[str, tuple[int, int]]) -> Path:
    report = {
        "files": {
            path: {"summary": {"covered_lines": covered, "num_statements": total}}
            for path, (covered, total) in files.items()
        }
    }
    path = tmp_path / "coverage.json"
    path.write_text(json.dumps(report))
    return path


def _run(report: Path, floor: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(TOOL), str(report), "--fail-under", floor],
        capture_output=True,
        text=True,
        check=False,
    )


def test_members_are_summed_per_package_and_the_floor_is_enforced(tmp_path: Path) -> None:
    report = _report(
        tmp_path,
        {
            "/repo/packages/aegis-db/src/aegis/db/_a.py": (40, 50),
            "/repo/packages/aegis-db/src/aegis/db/_b.py": (40, 50),
            "packages/aegis-log/src/aegis/log/_c.py": (9, 10),
            "tools/other.py": (0, 100),
        },
    )
    result = _run(report, "85")
    assert result.returncode == 1
    rows = [line.split() for line in result.stdout.splitlines()[1:3]]
    assert rows == [
        ["aegis-db", "100", "80", "80.0%", "<", "85%"],
        ["aegis-log", "10", "9", "90.0%"],
    ]
    assert "other" not in result.stdout
    assert result.stdout.endswith("line coverage under 85% in: aegis-db\n")
    assert _run(report, "80").returncode == 0

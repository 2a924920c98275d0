"""Print line coverage per workspace member from a coverage JSON report; fail below a floor.

Usage: python tools/coverage_summary.py coverage.json [--fail-under PERCENT]
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

FileSummaries = dict[str, dict[str, dict[str, int]]]
"""coverage.py's JSON report, ``files`` part: ``{path: {"summary": {counter: value}}}``."""


def coverage_by_member(report: dict[str, FileSummaries]) -> dict[str, tuple[int, int]]:
    """Return ``{member: (covered lines, statements)}`` from coverage.py's JSON report."""
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for path, data in report["files"].items():
        parts = Path(path).parts
        if "packages" not in parts:
            continue
        member = parts[parts.index("packages") + 1]
        totals[member][0] += data["summary"]["covered_lines"]
        totals[member][1] += data["summary"]["num_statements"]
    return {member: (covered, total) for member, (covered, total) in sorted(totals.items())}


def main() -> int:
    """Print the table; return 1 when a member is under the floor."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("report", type=Path)
    parser.add_argument("--fail-under", type=float, default=0.0)
    args = parser.parse_args()
    members = coverage_by_member(json.loads(args.report.read_text()))
    failed = []
    print(f"{'member':<16} {'lines':>6} {'covered':>8} {'percent':>8}")
    for member, (covered, total) in members.items():
        percent = 100.0 * covered / total if total else 100.0
        flag = ""
        if percent < args.fail_under:
            failed.append(member)
            flag = f"  < {args.fail_under:g}%"
        print(f"{member:<16} {total:>6} {covered:>8} {percent:>7.1f}%{flag}")
    if failed:
        print(f"line coverage under {args.fail_under:g}% in: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

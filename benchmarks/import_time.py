"""How much `import aegis.core` adds to `import pydantic`, measured with `python -X importtime`.

Each round starts two fresh interpreters, one importing pydantic alone and one importing pydantic
then aegis.core, and sums the self-times `-X importtime` reports for every module each imported.
Rounds alternate so machine noise hits both sides alike; the report gives medians.

Usage: .venv/bin/python benchmarks/import_time.py [--rounds 30] [--module aegis.core]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys


def import_microseconds(statement: str) -> int:
    """Total self time, in microseconds, of every module a fresh interpreter imports for it."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", statement],
        capture_output=True,
        text=True,
        check=True,
    )
    total = 0
    for line in result.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            self_us = line.removeprefix("import time:").split("|")[0].strip()
            if self_us.isdigit():
                total += int(self_us)
    return total


def main() -> None:
    """Print the median import cost of pydantic alone and with the module, and the difference."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--module", default="aegis.core")
    parser.add_argument(
        "--baseline",
        default="import pydantic",
        help='e.g. "from pydantic import BaseModel" to charge pydantic\'s lazy imports to pydantic',
    )
    args = parser.parse_args()
    base, combined = [], []
    for _ in range(args.rounds):
        base.append(import_microseconds(args.baseline))
        combined.append(import_microseconds(f"{args.baseline}; import {args.module}"))
    base_ms = statistics.median(base) / 1000
    combined_ms = statistics.median(combined) / 1000
    print(f"rounds: {args.rounds}")
    print(f"{args.baseline}: {base_ms:.2f} ms (median)")
    print(f"{args.baseline}; import {args.module}: {combined_ms:.2f} ms (median)")
    print(f"added by {args.module}: {combined_ms - base_ms:.2f} ms (x{combined_ms / base_ms:.2f})")


if __name__ == "__main__":
    main()

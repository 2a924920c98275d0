"""How much `import aegis.core` adds to `import pydantic`, measured with `python -X importtime`.

Each round starts two fresh interpreters, one importing pydantic alone and one importing pydantic
then aegis.core, and sums the self-times `-X importtime` reports for every module each imported.
Rounds alternate so machine noise hits both sides alike; the report gives medians.

With ``--all-packages``: for every aegis package, ``import aegis.X`` in a fresh interpreter
against importing only the third-party libraries the member requires (``--rounds``
alternating rounds, medians), so that installing only aegis-db keeps start-up lean (goal:
at most 40 ms added), and the wall time of ``aegis-schema --help`` and ``aegis-config --help``
against an interpreter that does nothing (goal: at most 250 ms). The package table also gives
the difference in CPU time (user + system) of the two interpreters: on a loaded machine the
wall-clock self times of ``-X importtime`` swing with every preemption, CPU time much less.

Usage: .venv/bin/python benchmarks/import_time.py [--rounds 30] [--module aegis.core]
       [--all-packages [--only aegis.db,aegis.log]] [--json PATH]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _results import Results, add_json_argument, figure

# Each aegis package against the import of the third-party libraries it requires (its
# pyproject's dependencies: what a service using those libraries directly would import).
PACKAGES = {
    "aegis.core": "import pydantic",
    "aegis.config": "import pydantic_settings",
    "aegis.log": "import orjson, structlog, logging",
    "aegis.obs": "import prometheus_client, opentelemetry.trace, starlette.routing",
    "aegis.db": "import sqlalchemy.ext.asyncio, prometheus_client",
    "aegis.auth": "import jwt, starlette.requests, prometheus_client",
    "aegis.cache": "import redis.asyncio, prometheus_client",
    "aegis.msg": "import confluent_kafka, pydantic, prometheus_client, opentelemetry.trace",
    "aegis.schema": "import alembic, sqlalchemy, pydantic, ruamel.yaml",
}
ADDED_GOAL_MS = 40
# Command lines that must answer --help quickly, and the goal for each.
COMMANDS = ("aegis-schema", "aegis-config")
HELP_GOAL_MS = 250


def import_cost(statement: str) -> tuple[int, float]:
    """Run ``statement`` in a fresh interpreter; return its modules' self time and its CPU time.

    The first is the total ``-X importtime`` self time, in microseconds, of every module it
    imports; the second the interpreter's whole CPU time in milliseconds, start-up included.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", statement],
        capture_output=True,
        text=True,
        check=True,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_ms = (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) * 1000
    total = 0
    for line in result.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            self_us = line.removeprefix("import time:").split("|")[0].strip()
            if self_us.isdigit():
                total += int(self_us)
    return total, cpu_ms


def import_microseconds(statement: str) -> int:
    """Total self time, in microseconds, of every module a fresh interpreter imports for it."""
    return import_cost(statement)[0]


def all_packages(rounds: int, results: Results, only: frozenset[str] = frozenset()) -> None:
    """Import cost of every aegis package (or those in ``only``) against the libraries it wraps."""
    print(f"\n{'package':<14} {'raw library ms':>15} {'aegis ms':>10} {'added ms':>10} "
          f"{'added CPU ms':>13}")  # fmt: skip
    rows = []
    for module, baseline in PACKAGES.items():
        if only and module not in only:
            continue
        base, combined = [], []
        for _ in range(rounds):
            base.append(import_cost(baseline))
            combined.append(import_cost(f"import {module}"))
        base_ms = statistics.median(us for us, _ in base) / 1000
        combined_ms = statistics.median(us for us, _ in combined) / 1000
        base_cpu = statistics.median(cpu for _, cpu in base)
        added_cpu = statistics.median(cpu for _, cpu in combined) - base_cpu
        print(f"{module:<14} {base_ms:>15.1f} {combined_ms:>10.1f} {combined_ms - base_ms:>10.1f} "
              f"{added_cpu:>13.1f}")  # fmt: skip
        results.case(
            f"import {module}",
            "ms",
            aegis=figure(f"import {module}", combined_ms),
            raw=figure(baseline, base_ms),
            higher_is_better=False,
            goal=f"<= {ADDED_GOAL_MS} ms added",
        )
        rows.append([module, baseline, f"{base_ms:.1f}", f"{combined_ms:.1f}",
                     f"{combined_ms - base_ms:.1f}", f"{added_cpu:.1f}"])  # fmt: skip
    results.table(
        f"Import cost, python -X importtime and CPU time, medians of {rounds} fresh interpreters",
        ["package", "raw library import", "raw ms", "aegis ms", "added ms", "added CPU ms"],
        rows,
    )


def wall_ms(command: list[str]) -> float:
    """Wall-clock milliseconds of ``command`` in a fresh process, output discarded."""
    started = time.perf_counter()
    subprocess.run(command, capture_output=True, check=True)
    return (time.perf_counter() - started) * 1000


def command_help(rounds: int, results: Results) -> None:
    """Wall time of each command's ``--help`` against ``python -c pass`` (alternating, medians)."""
    scripts = Path(sys.executable).parent
    print(f"\n{'command':<26} {'python -c pass ms':>18} {'--help ms':>10}")
    for name in COMMANDS:
        idle, helped = [], []
        for _ in range(rounds):
            idle.append(wall_ms([sys.executable, "-c", "pass"]))
            helped.append(wall_ms([str(scripts / name), "--help"]))
        idle_ms, help_ms = statistics.median(idle), statistics.median(helped)
        print(f"{name + ' --help':<26} {idle_ms:>18.1f} {help_ms:>10.1f}")
        results.case(
            f"{name} --help",
            "ms",
            aegis=figure(f"{name} --help", help_ms),
            raw=figure("python -c pass", idle_ms),
            higher_is_better=False,
            goal=f"<= {HELP_GOAL_MS} ms",
        )


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
    parser.add_argument(
        "--all-packages", action="store_true", help="also every aegis package vs its library"
    )
    parser.add_argument(
        "--only",
        type=lambda text: frozenset(text.split(",")),
        default=frozenset(),
        help="with --all-packages: only these comma-separated modules, e.g. aegis.db,aegis.log",
    )
    add_json_argument(parser)
    args = parser.parse_args()
    if unknown := args.only - PACKAGES.keys():
        parser.error(f"--only: not an aegis package here: {', '.join(sorted(unknown))}")
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
    results = Results("aegis-core", "import_time", ["pydantic"])
    if args.all_packages:
        all_packages(args.rounds, results, args.only)
        command_help(args.rounds, results)
    else:
        results.case(
            f"{args.baseline}; import {args.module}",
            "ms",
            aegis=figure(f"import {args.module}", combined_ms),
            raw=figure(args.baseline, base_ms),
            higher_is_better=False,
        )
    results.write(args.json)


if __name__ == "__main__":
    main()

"""Machine-readable results of one benchmark run, for ``--json PATH`` and ``./dev bench``.

Every benchmark script keeps its printed report and, given ``--json PATH``, also writes what it
measured there: per case the aegis figure, the raw-library figure and the peer figures, all from
the same run, plus free tables (memory, import cost, profile) and the environment. The format is
read by ``tools/bench.py`` (``./dev bench``), which renders ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

FORMAT = 1


def add_json_argument(parser: argparse.ArgumentParser) -> None:
    """Add the ``--json PATH`` option every benchmark script shares."""
    parser.add_argument(
        "--json",
        metavar="PATH",
        type=Path,
        default=None,
        help="also write the figures as JSON (read by tools/bench.py, which renders RESULTS.md)",
    )


def figure(label: str, value: float) -> dict[str, Any]:
    """One measured figure: what ran (``label``) and its value."""
    return {"label": label, "value": value}


def versions(distributions: list[str]) -> dict[str, str]:
    """Installed version of each distribution; missing ones are left out."""
    found: dict[str, str] = {}
    for name in distributions:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def environment() -> dict[str, Any]:
    """The machine and interpreter the figures come from."""
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": _cpu_model(),
        "cpus": os.cpu_count(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def _cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo, or what platform knows."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _arguments(argv: list[str]) -> list[str]:
    """The command-line arguments without ``--json PATH`` (where the output went)."""
    kept: list[str] = []
    skip = False
    for argument in argv:
        if skip:
            skip = False
        elif argument == "--json":
            skip = True
        elif not argument.startswith("--json="):
            kept.append(argument)
    return kept


class Results:
    """The cases and tables of one benchmark run; ``write`` saves them as JSON."""

    def __init__(self, package: str, benchmark: str, libraries: list[str]) -> None:
        """Start the results of ``benchmark`` (for ``package``), naming the libraries measured."""
        self.package = package
        self.benchmark = benchmark
        self.libraries = [package, *libraries]
        self.params: dict[str, Any] = {"argv": _arguments(sys.argv[1:])}
        self.cases: list[dict[str, Any]] = []
        self.tables: list[dict[str, Any]] = []

    def case(
        self,
        name: str,
        unit: str,
        *,
        aegis: dict[str, Any],
        raw: dict[str, Any] | None = None,
        peers: list[dict[str, Any]] | None = None,
        higher_is_better: bool = True,
        goal: str | None = None,
    ) -> None:
        """Record one case: the aegis figure against the raw library and the peers."""
        self.cases.append(
            {
                "name": name,
                "unit": unit,
                "higher_is_better": higher_is_better,
                "aegis": aegis,
                "raw": raw,
                "peers": peers or [],
                "goal": goal,
            }
        )

    def table(self, title: str, headers: list[str], rows: list[list[str]]) -> None:
        """Record a free table (memory, import cost, profile) shown as it is."""
        self.tables.append({"title": title, "headers": headers, "rows": rows})

    def write(self, path: Path | None) -> None:
        """Write the JSON document to ``path``; nothing when ``path`` is None."""
        if path is None:
            return
        document = {
            "format": FORMAT,
            "package": self.package,
            "benchmark": self.benchmark,
            "params": self.params,
            "environment": environment(),
            "versions": versions(self.libraries),
            "cases": self.cases,
            "tables": self.tables,
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(document, indent=2) + "\n")

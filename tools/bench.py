"""Run the benchmarks in benchmarks/ and render benchmarks/RESULTS.md from their JSON output.

``./dev bench [--quick] [PACKAGE..]`` calls ``run``: every benchmark script (or those of the
named packages) runs with ``--json benchmarks/results/NAME.json``; then ``render`` reads every
JSON file there (so a one-package run refreshes only that package's part) and writes RESULTS.md
with a table per package (aegis, raw library and peers measured in the same run, and the
ratios), a bar chart per package (PNG, matplotlib) and each run's machine, Python and library
versions. benchmarks/fixes.toml, written by hand (a profiled hot path, the fix, the figures before
and after), becomes the table "Profiled and fixed".

A ratio is always "aegis relative to X" with >1 meaning aegis is better: throughput divided by
throughput, or time divided into time.

Before a script runs, its previous JSON is kept as ``results/previous/NAME.json``. Where that
previous run is identical (same script arguments, same machine and Python), a ratio that
moved by more than ``NOISE`` (15%) between the two is marked *noisy* in RESULTS.md: on a
shared machine it is neither a win nor a miss. The report also says which machine the figures
come from and whether a run was ``--quick``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
import tomllib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "benchmarks"
PREVIOUS = "previous"
"""The folder, inside the results folder, that keeps each script's previous run."""
NOISE = 0.15
"""A ratio that moves more than this between two identical runs is marked noisy."""


@dataclass(frozen=True)
class Script:
    """One benchmark script, the package it measures, and its arguments (full and quick)."""

    name: str
    package: str
    full: tuple[str, ...] = ()
    quick: tuple[str, ...] = ()


SCRIPTS = [
    Script("import_time", "aegis-core", ("--rounds", "15", "--all-packages"),
           ("--rounds", "3", "--all-packages")),
    Script("log_throughput", "aegis-log", ("--lines", "50000", "--rounds", "7"),
           ("--lines", "10000", "--rounds", "3")),
    Script("obs_overhead", "aegis-obs",
           ("--calls", "20000", "--rounds", "5", "--uvicorn", "--seconds", "1.5"),
           ("--calls", "3000", "--rounds", "3")),
    Script("db_repository", "aegis-db", ("--rounds", "5"), ("--rounds", "2")),
    Script("auth_verify", "aegis-auth", ("--calls", "20000", "--rounds", "5"),
           ("--calls", "2000", "--rounds", "3")),
    Script("cache_hits", "aegis-cache", ("--calls", "20000", "--rounds", "7"),
           ("--calls", "2000", "--batches", "60", "--rounds", "3")),
    Script("schema_planning", "aegis-schema", ("--rounds", "5"), ("--rounds", "2")),
    Script("msg_publish", "aegis-msg",
           ("--events", "100000", "--rounds", "3", "--consume-rounds", "7"),
           ("--events", "10000", "--rounds", "1")),
    Script("service_load", "aegis-all", ("--seconds", "5"), ("--seconds", "1")),
    Script("service_memory", "aegis-all", ("--requests", "5000", "--soak", "1000000"),
           ("--requests", "1000", "--soak", "50000")),
]  # fmt: skip


def selected(packages: list[str]) -> list[Script]:
    """The scripts that exist and measure one of ``packages`` (all when empty)."""
    wanted = {f"aegis-{name.removeprefix('aegis-')}" for name in packages}
    unknown = wanted - {script.package for script in SCRIPTS}
    if unknown:
        raise SystemExit(f"no benchmark for {', '.join(sorted(unknown))}")
    return [
        script
        for script in SCRIPTS
        if (not wanted or script.package in wanted) and (BENCHMARKS / f"{script.name}.py").exists()
    ]


def run(scripts: list[Script], results: Path, *, quick: bool) -> list[str]:
    """Run each script with ``--json``; return the names of those that failed."""
    failed = []
    results.mkdir(parents=True, exist_ok=True)
    for script in scripts:
        arguments = script.quick if quick else script.full
        output = results / f"{script.name}.json"
        if output.exists():  # kept, so that the report can tell noise from a change
            (results / PREVIOUS).mkdir(exist_ok=True)
            shutil.copyfile(output, results / PREVIOUS / output.name)
        command = [sys.executable, str(BENCHMARKS / f"{script.name}.py"), *arguments]
        print(f"==> {' '.join(command[1:])}", file=sys.stderr, flush=True)
        started = time.monotonic()
        status = subprocess.run([*command, "--json", str(output)], check=False).returncode
        print(f"    {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
        if status != 0:
            failed.append(script.name)
    return failed


def ratio(case: dict[str, Any], other: dict[str, Any] | None) -> float | None:
    """How much better aegis is than ``other`` in ``case`` (>1: aegis better)."""
    if other is None:
        return None
    return relative(
        case["aegis"]["value"], other["value"], higher_is_better=case["higher_is_better"]
    )


def relative(value: float, base: float, *, higher_is_better: bool) -> float | None:
    """``value`` relative to ``base`` (>1: better); None when either is zero."""
    if not value or not base:
        return None
    return value / base if higher_is_better else base / value


def number(value: float) -> str:
    """A figure with about three significant digits and thousands separators."""
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def shown(item: dict[str, Any] | None) -> str:
    """A figure as ``value (label)``, or a dash."""
    if item is None:
        return "-"
    return f"{number(item['value'])} ({item['label']})"


def times(value: float | None) -> str:
    """A ratio as ``x1.23``, or a dash."""
    return "-" if value is None else f"x{value:.2f}"


def markdown_table(headers: list[str], rows: list[list[str]]) -> list[str]:
    """Lines of a Markdown table; pipes in cells are escaped."""

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(str(cell).replace("|", "\\|") for cell in cells) + " |"

    return [line(headers), "|" + "---|" * len(headers), *(line(row) for row in rows)]


def run_kind(document: dict[str, Any]) -> str:
    """``full run``, ``quick run (--quick)`` or ``run by hand``, from the script's arguments."""
    argv = list(document["params"]["argv"])
    for script in SCRIPTS:
        if script.name == document["benchmark"]:
            if argv == list(script.full):
                return "full run"
            if argv == list(script.quick):
                return "quick run (`--quick`: fewer rounds)"
    return "run by hand"


def machine(environment: dict[str, Any]) -> str:
    """The processor, CPU count and interpreter of a run."""
    return (
        f"{environment['processor']}, {environment['cpus']} CPUs, "
        f"{environment['implementation']} {environment['python']}"
    )


def identical(document: dict[str, Any], previous: dict[str, Any] | None) -> bool:
    """Whether ``previous`` ran the same script with the same arguments on the same machine."""
    return (
        previous is not None
        and previous["benchmark"] == document["benchmark"]
        and previous["params"]["argv"] == document["params"]["argv"]
        and machine(previous["environment"]) == machine(document["environment"])
    )


def steady(value: float | None, before: float | None) -> str:
    """A ratio, marked noisy when it moved more than NOISE since the identical previous run."""
    if value is None or before is None or abs(value / before - 1) <= NOISE:
        return times(value)
    return f"{times(value)} (noisy: {times(before)} in the previous run)"


def earlier(
    before: dict[str, Any] | None, side: dict[str, Any] | None, *, raw: bool
) -> float | None:
    """The ratio against ``side`` (the raw figure, or a peer by its label) in ``before``."""
    if before is None or side is None:
        return None
    if raw:
        return ratio(before, before["raw"])
    return ratio(before, next((p for p in before["peers"] if p["label"] == side["label"]), None))


def case_rows(document: dict[str, Any], previous: dict[str, Any] | None = None) -> list[list[str]]:
    """One table row per case of a benchmark document.

    ``previous`` is the document of the previous run; when it is :func:`identical`, a ratio
    that moved more than ``NOISE`` since then is marked noisy.
    """
    before_cases = (
        {case["name"]: case for case in previous["cases"]}
        if previous is not None and identical(document, previous)
        else {}
    )
    rows = []
    for case in document["cases"]:
        peers = case["peers"]
        before = before_cases.get(case["name"])
        better = "higher" if case["higher_is_better"] else "lower"
        rows.append(
            [
                case["name"],
                f"{case['unit']} ({better} is better)",
                shown(case["aegis"]),
                shown(case["raw"]),
                "<br>".join(shown(peer) for peer in peers) or "-",
                steady(ratio(case, case["raw"]), earlier(before, case["raw"], raw=True)),
                "<br>".join(
                    steady(ratio(case, peer), earlier(before, peer, raw=False)) for peer in peers
                )
                or "-",
                case["goal"] or "",
            ]
        )
    return rows


BOTTLENECKS = "Bottlenecks: "
FIXES_SECTION = "## Profiled and fixed"
FIXES_HEADERS = ["case", "the profile showed", "fix", "before → after"]
CASE_HEADERS = ["case", "unit", "aegis", "raw", "peer", "aegis vs raw", "aegis vs peer", "goal"]


def by_package(documents: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The documents grouped by package, packages sorted."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for document in sorted(documents, key=lambda d: (d["package"], d["benchmark"])):
        groups.setdefault(document["package"], []).append(document)
    return groups


def fixes_section(fixes: str) -> list[str]:
    """The "Profiled and fixed" table: one row per ``[[fix]]`` of fixes.toml (``fixes``)."""
    rows = [
        [entry["case"], entry["profile"], entry["fix"], entry["result"]]
        for entry in tomllib.loads(fixes).get("fix", [])
    ]
    if not rows:
        return []
    intro = "Hot paths a profiler found where a ratio missed its goal (benchmarks/fixes.toml)."
    return [FIXES_SECTION, "", intro, "", *markdown_table(FIXES_HEADERS, rows), ""]


def render(
    documents: list[dict[str, Any]],
    charts: dict[str, str],
    fixes: str | None = None,
    previous: dict[str, dict[str, Any]] | None = None,
) -> str:
    """RESULTS.md for ``documents``.

    ``charts`` maps a package to its chart's relative path; ``fixes`` is the text of fixes.toml;
    ``previous`` maps a benchmark to the document of its previous run.
    """
    previous = previous or {}
    kinds = Counter(run_kind(document) for document in documents)
    lines = [
        "# Benchmark results",
        "",
        "Written by `./dev bench` (tools/bench.py) from the JSON each script in benchmarks/ writes",
        "with `--json`. In every case the aegis, raw-library and peer figures come from the same",
        "run; a ratio is aegis relative to the other side, **>1 means aegis is better** (more",
        "throughput, or less time/memory). Absolute figures on a shared machine vary from run to",
        "run; the ratios are what to compare. A ratio marked *noisy* moved more than "
        f"±{NOISE:.0%} since the",
        "previous run of the same script with the same arguments on the same machine: read it as",
        "neither a win nor a miss.",
        "",
        *(f"- Machine: {name}" for name in sorted({machine(d["environment"]) for d in documents})),
        "- Runs: " + ", ".join(f"{kind}: {count}" for kind, count in sorted(kinds.items())),
        "",
    ]
    bottlenecks: list[dict[str, Any]] = []
    for package, group in by_package(documents).items():
        lines += [f"## {package}", ""]
        if package in charts:
            lines += [f"![{package}: aegis vs raw vs peer]({charts[package]})", ""]
        for document in group:
            environment = document["environment"]
            lines += [
                f"### `{document['benchmark']}.py`",
                "",
                f"Run {environment['date']} with `{' '.join(document['params']['argv'])}` "
                f"({run_kind(document)}).",
                "",
            ]
            if document["cases"]:
                rows = case_rows(document, previous.get(document["benchmark"]))
                lines += [*markdown_table(CASE_HEADERS, rows), ""]
            for table in document["tables"]:
                if table["title"].startswith(BOTTLENECKS):
                    bottlenecks.append(table)
                    continue
                lines += [f"**{table['title']}**", ""]
                lines += [*markdown_table(table["headers"], table["rows"]), ""]
    if fixes is not None:
        lines += fixes_section(fixes)
    if bottlenecks:
        lines += ["## Bottlenecks", ""]
        lines += [
            "Where the time of a typical request goes, from a profile (`service_memory.py`).",
            "",
        ]
        for table in bottlenecks:
            lines += [f"**{table['title'].removeprefix(BOTTLENECKS)}**", ""]
            lines += [*markdown_table(table["headers"], table["rows"]), ""]
    lines += ["## Environment", ""]
    rows = []
    for document in sorted(documents, key=lambda d: d["benchmark"]):
        environment = document["environment"]
        rows.append(
            [
                f"`{document['benchmark']}.py`",
                environment["date"],
                f"{environment['implementation']} {environment['python']}",
                f"{environment['processor']}, {environment['cpus']} CPUs, "
                f"{environment['platform']}",
                ", ".join(f"{name} {version}" for name, version in document["versions"].items()),
            ]
        )
    lines += markdown_table(["benchmark", "date", "Python", "machine", "versions"], rows)
    return "\n".join(lines) + "\n"


def chart(package: str, documents: list[dict[str, Any]], path: Path) -> bool:
    """Draw the package's cases as grouped bars relative to raw = 1; False when nothing to draw."""
    import matplotlib as mpl  # only `./dev bench` needs matplotlib

    mpl.use("Agg")
    import matplotlib.pyplot as plt

    bars: list[tuple[str, list[tuple[str, float]]]] = []
    for document in documents:
        for case in document["cases"]:
            base = case["raw"] or (case["peers"][0] if case["peers"] else None)
            if base is None or not base["value"]:
                continue
            # Relative performance against the baseline: >1 is better, whatever the unit.
            sides = [("aegis", case["aegis"]), ("raw", case["raw"])]
            sides += [(f"peer: {peer['label']}", peer) for peer in case["peers"]]
            higher = case["higher_is_better"]
            values = [
                (name, relative(item["value"], base["value"], higher_is_better=higher) or 0.0)
                for name, item in sides
                if item is not None
            ]
            bars.append((case["name"], values))
    if not bars:
        return False
    height = max(2.5, 0.55 * sum(len(values) for _, values in bars) + 1)
    figure, axes = plt.subplots(figsize=(9, height))
    position = 0.0
    ticks, labels = [], []
    colours = {"aegis": "#2b6cb0", "raw": "#a0aec0"}
    for name, values in bars:
        start = position
        for side, value in values:
            colour = colours.get(side, "#ed8936")
            axes.barh(position, value, color=colour, height=0.8)
            label = side if len(side) <= 40 else side[:39] + "…"
            axes.text(value, position, f" {value:.2f} {label}", va="center", fontsize=7)
            position += 1
        ticks.append((start + position - 1) / 2)
        labels.append(name)
        position += 0.8
    axes.axvline(1.0, color="black", linewidth=0.6)
    largest = max(value for _, values in bars for _, value in values)
    if largest > 20:  # a cache's x300 would flatten every other bar
        axes.set_xscale("log")
    axes.set_yticks(ticks, labels, fontsize=8)
    axes.invert_yaxis()
    scale = " (log scale)" if largest > 20 else ""
    axes.set_xlabel(f"relative to the raw library = 1{scale} (>1 better; times, sizes inverted)")
    axes.set_title(f"{package}: aegis vs raw vs peers (same run)")
    if largest <= 20:
        axes.set_xlim(0, largest * 1.7)
    else:
        axes.set_xlim(right=largest * 8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return True


def write_report(results: Path, output: Path, *, charts: bool, fixes: Path | None = None) -> None:
    """Render ``output`` (and the charts beside it) from every JSON file in ``results``.

    ``fixes`` (benchmarks/fixes.toml) is included when the file exists.
    """
    documents = [json.loads(path.read_text()) for path in sorted(results.glob("*.json"))]
    previous = {
        document["benchmark"]: document
        for document in (
            json.loads(path.read_text()) for path in sorted((results / PREVIOUS).glob("*.json"))
        )
    }
    paths: dict[str, str] = {}
    if charts:
        for package, group in by_package(documents).items():
            path = output.parent / "charts" / f"{package}.png"
            if chart(package, group, path):
                paths[package] = path.relative_to(output.parent).as_posix()
    fixes_text = fixes.read_text() if fixes is not None and fixes.is_file() else None
    output.write_text(render(documents, paths, fixes_text, previous))
    print(f"wrote {output.relative_to(ROOT) if output.is_relative_to(ROOT) else output}")


def main(argv: list[str] | None = None) -> int:
    """``run [--quick] [PACKAGE..]`` or ``render``; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["run", "render"])
    parser.add_argument("packages", nargs="*")
    parser.add_argument("--quick", action="store_true", help="fewer rounds and calls")
    parser.add_argument("--results", type=Path, default=BENCHMARKS / "results")
    parser.add_argument("--output", type=Path, default=BENCHMARKS / "RESULTS.md")
    parser.add_argument("--fixes", type=Path, default=BENCHMARKS / "fixes.toml")
    parser.add_argument("--no-charts", action="store_true")
    args = parser.parse_intermixed_args(argv)  # `run --quick db` as well as `run db --quick`
    failed: list[str] = []
    if args.command == "run":
        failed = run(selected(args.packages), args.results, quick=args.quick)
    write_report(args.results, args.output, charts=not args.no_charts, fixes=args.fixes)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

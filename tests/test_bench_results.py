"""./dev bench's report: benchmark JSON in, benchmarks/RESULTS.md (tables, ratios, charts) out."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from _results import Results, figure

from bench import FIXES_SECTION, ROOT, main, ratio, render, selected


def _synthetic(results_dir: Path) -> None:
    """Two tiny benchmark documents, written the way the scripts write them."""
    log = Results("aegis-log", "log_throughput", ["structlog"])
    log.case(
        "JSON line",
        "lines/s",
        aegis=figure("aegis native", 200_000),
        raw=figure("stdlib json", 100_000),
        peers=[figure("structlog fast", 160_000)],
        goal=">= 0.90x structlog",
    )
    log.write(results_dir / "log_throughput.json")
    service = Results("aegis-all", "service_memory", [])
    service.case(
        "peak RSS",
        "MiB",
        aegis=figure("aegis stack", 60.0),
        raw=figure("bare", 48.0),
        higher_is_better=False,
    )
    service.table("Memory held", ["stack", "bytes"], [["aegis | all", "0.1"]])
    service.table("Bottlenecks: per component", ["component", "share"], [["aegis.log", "23%"]])
    service.write(results_dir / "service_memory.json")


def test_the_report_shows_each_case_with_its_ratios_chart_and_environment(
    tmp_path: Path,
) -> None:
    _synthetic(tmp_path / "results")
    output = tmp_path / "RESULTS.md"

    assert main(["render", "--results", str(tmp_path / "results"), "--output", str(output)]) == 0

    text = output.read_text()
    assert "## aegis-log" in text
    assert "## aegis-all" in text
    row = next(line for line in text.splitlines() if line.startswith("| JSON line |"))
    assert "200,000 (aegis native)" in row
    assert "100,000 (stdlib json)" in row
    assert "160,000 (structlog fast)" in row
    assert "| x2.00 | x1.25 | >= 0.90x structlog |" in row
    rss = next(line for line in text.splitlines() if line.startswith("| peak RSS |"))
    assert "MiB (lower is better)" in rss
    assert "| x0.80 | - |" in rss
    assert "aegis \\| all" in text  # a pipe in a cell does not break the table
    assert "![aegis-log: aegis vs raw vs peer](charts/aegis-log.png)" in text
    assert (tmp_path / "charts" / "aegis-log.png").read_bytes().startswith(b"\x89PNG")
    assert (tmp_path / "charts" / "aegis-all.png").exists()
    environment = text.split("## Environment", 1)[1]
    assert f"{sys.version_info.major}.{sys.version_info.minor}" in environment
    assert "structlog " in environment


def test_bottleneck_tables_get_their_own_section(tmp_path: Path) -> None:
    _synthetic(tmp_path)
    documents = [json.loads(path.read_text()) for path in sorted(tmp_path.glob("*.json"))]

    text = render(documents, charts={})

    package_part, bottlenecks = text.split("## Bottlenecks", 1)
    assert "per component" not in package_part
    assert "**per component**" in bottlenecks
    assert "| aegis.log | 23% |" in bottlenecks
    assert "![" not in text


FIXES = """
[[fix]]
case = "aegis-log: JSON line"
profile = "orjson options rebuilt per line"
fix = "options built once"
result = "vs structlog 0.75x → 1.25x"
"""


def test_fixes_toml_renders_as_one_table_row_per_fix(tmp_path: Path) -> None:
    _synthetic(tmp_path / "results")
    (tmp_path / "fixes.toml").write_text(FIXES)
    output = tmp_path / "RESULTS.md"

    assert main(["render", "--results", str(tmp_path / "results"), "--output", str(output),
                 "--fixes", str(tmp_path / "fixes.toml"), "--no-charts"]) == 0  # fmt: skip

    text = output.read_text()
    assert text.count(FIXES_SECTION) == 1
    section = text.split(FIXES_SECTION + "\n\n", 1)[1]
    assert "| case | the profile showed | fix | before → after |" in section
    assert (
        "| aegis-log: JSON line | orjson options rebuilt per line | options built once "
        "| vs structlog 0.75x → 1.25x |"
    ) in section
    assert text.index("## aegis-log") < text.index(FIXES_SECTION) < text.index("## Bottlenecks")


def test_no_fixes_file_no_section(tmp_path: Path) -> None:
    _synthetic(tmp_path / "results")
    output = tmp_path / "RESULTS.md"

    main(["render", "--results", str(tmp_path / "results"), "--output", str(output),
          "--fixes", str(tmp_path / "missing.toml"), "--no-charts"])  # fmt: skip

    assert FIXES_SECTION not in output.read_text()


def test_the_repository_fixes_file_renders_under_its_section() -> None:
    fixes = (ROOT / "benchmarks" / "fixes.toml").read_text()
    text = render([], charts={}, fixes=fixes)
    section = text.split(FIXES_SECTION, 1)[1]
    assert section.count("\n| ") >= 5  # the header row and a row per fix


def test_a_ratio_is_above_one_when_aegis_is_better_whatever_the_unit() -> None:
    faster = {"aegis": figure("a", 50.0), "higher_is_better": False}
    more = {"aegis": figure("a", 50.0), "higher_is_better": True}

    assert ratio(faster, figure("raw", 100.0)) == 2.0
    assert ratio(more, figure("raw", 100.0)) == 0.5
    assert ratio(more, None) is None
    assert ratio(more, figure("raw", 0.0)) is None


def test_packages_select_their_benchmarks_and_unknown_ones_are_refused() -> None:
    assert [script.name for script in selected(["log"])] == ["log_throughput"]
    assert [script.name for script in selected(["aegis-db"])] == ["db_repository"]
    assert [script.name for script in selected(["all"])] == ["service_load", "service_memory"]
    with pytest.raises(SystemExit, match="no benchmark for aegis-nothing"):
        selected(["nothing"])
    with pytest.raises(SystemExit, match="no benchmark for aegis-nothing"):
        main(["run", "--quick", "nothing"])  # options before and after the packages


def test_a_benchmark_script_writes_json_the_report_reads(tmp_path: Path) -> None:
    output = tmp_path / "results" / "import_time.json"
    subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "import_time.py"), "--rounds", "1",
         "--module", "aegis.core", "--json", str(output)],
        check=True,
        capture_output=True,
    )  # fmt: skip

    document = json.loads(output.read_text())
    assert document["package"] == "aegis-core"
    assert document["params"]["argv"] == ["--rounds", "1", "--module", "aegis.core"]
    (case,) = document["cases"]
    assert case["raw"]["label"] == "import pydantic"
    assert case["aegis"]["value"] > 0
    assert case["raw"]["value"] > 0
    main(["render", "--results", str(output.parent), "--output", str(tmp_path / "R.md"),
          "--no-charts"])  # fmt: skip
    assert "import pydantic; import aegis.core" in (tmp_path / "R.md").read_text()

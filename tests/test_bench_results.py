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

from bench import FIXES_SECTION, ROOT, main, ratio, render, run, selected


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


def _log_run(path: Path, aegis: float, argv: list[str], *, cpus: int = 2) -> None:
    """One log_throughput document with the given aegis figure, arguments and CPU count."""
    results = Results("aegis-log", "log_throughput", [])
    results.params["argv"] = argv
    results.case("JSON line", "lines/s", aegis=figure("aegis", aegis), raw=figure("raw", 100.0))
    results.write(path)
    document = json.loads(path.read_text())
    document["environment"]["cpus"] = cpus
    path.write_text(json.dumps(document))


def _json_line_row(results: Path, tmp_path: Path) -> str:
    output = tmp_path / "R.md"
    main(["render", "--results", str(results), "--output", str(output), "--no-charts"])
    return next(line for line in output.read_text().splitlines() if "| JSON line |" in line)


def test_a_ratio_that_moved_more_than_15_percent_since_an_identical_run_is_noisy(
    tmp_path: Path,
) -> None:
    results = tmp_path / "results"
    full = ["--lines", "50000", "--rounds", "7"]
    _log_run(results / "log_throughput.json", 200.0, full)
    _log_run(results / "previous" / "log_throughput.json", 150.0, full)
    assert "| x2.00 (noisy: x1.50 in the previous run) |" in _json_line_row(results, tmp_path)
    _log_run(results / "previous" / "log_throughput.json", 180.0, full)  # 11%: not noise
    assert "| x2.00 | - |" in _json_line_row(results, tmp_path)


def test_a_previous_run_with_other_arguments_or_on_another_machine_is_not_compared(
    tmp_path: Path,
) -> None:
    results = tmp_path / "results"
    full = ["--lines", "50000", "--rounds", "7"]
    _log_run(results / "log_throughput.json", 200.0, full)
    _log_run(results / "previous" / "log_throughput.json", 100.0, ["--lines", "10"])
    assert "noisy" not in _json_line_row(results, tmp_path)
    _log_run(results / "previous" / "log_throughput.json", 100.0, full, cpus=64)
    assert "noisy" not in _json_line_row(results, tmp_path)


def test_the_report_names_the_machine_and_whether_a_run_was_quick(tmp_path: Path) -> None:
    results = tmp_path / "results"
    _log_run(results / "log_throughput.json", 200.0, ["--lines", "10000", "--rounds", "3"])
    output = tmp_path / "R.md"
    main(["render", "--results", str(results), "--output", str(output), "--no-charts"])
    text = output.read_text()
    assert "- Machine: " in text
    assert ", 2 CPUs, " in text
    assert "- Runs: quick run (`--quick`: fewer rounds): 1" in text
    assert "`--lines 10000 --rounds 3` (quick run (`--quick`: fewer rounds))." in text


def test_a_run_keeps_the_previous_json_of_each_script(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    results = tmp_path / "results"
    results.mkdir()
    (results / "log_throughput.json").write_text('{"old": true}')
    ran: list[list[str]] = []

    def fake_run(command: list[str], check: bool) -> subprocess.CompletedProcess[str]:
        ran.append(command)
        Path(command[-1]).write_text('{"new": true}')
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(subprocess, "run", fake_run)
    assert run(selected(["log"]), results, quick=True) == []
    assert json.loads((results / "previous" / "log_throughput.json").read_text()) == {"old": True}
    assert json.loads((results / "log_throughput.json").read_text()) == {"new": True}
    assert ran[0][-2:] == ["--json", str(results / "log_throughput.json")]


def test_the_profile_names_aegis_members_by_package_whatever_the_checkout_is_called() -> None:
    from service_memory import component

    checkout = "/home/dev/aegis"  # a clone named aegis: every path contains /aegis/
    site = f"{checkout}/.venv/lib/python3.11/site-packages"
    assert component(f"{site}/starlette/routing.py") == "starlette"
    assert component(f"{site}/six.py") == "six"
    assert component(f"{site}/aegis/obs/_asgi.py") == "aegis.obs"  # installed from a wheel
    assert component(f"{checkout}/packages/aegis-log/src/aegis/log/_asgi.py") == "aegis.log"
    assert component("/usr/lib/python3.11/json/encoder.py").startswith("Python runtime")
    assert component(f"{checkout}/benchmarks/service_memory.py").startswith("benchmark")

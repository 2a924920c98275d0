"""./dev mutate (tools/mutate.py) on a toy member: one mutant killed, one surviving, one
recorded equivalent, and the mutants inside annotations left out."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
from mutate import (
    Equivalent,
    Report,
    annotation_spans,
    score_line,
    select_mutants,
    stale_records,
)

TOOL = Path(__file__).resolve().parent.parent / "tools" / "mutate.py"

TOY = """\
from __future__ import annotations


def label(flag: int | None) -> str:
    if flag:
        return "on"
    return "off"


def check(flag: object) -> None:
    if flag:
        raise ValueError("flag")


def noop(flag: object) -> None:
    if flag:
        pass
"""

SURVIVOR = """\
survived: pkg/src/toy/__init__.py:11:7 core/AddNot
--- a/pkg/src/toy/__init__.py
+++ b/pkg/src/toy/__init__.py
@@ -10,3 +10,3 @@
 def check(flag: object) -> None:
-    if flag:
+    if not flag:
         raise ValueError("flag")
"""


def toy_repository(root: Path, test_body: str) -> Path:
    """A repository with pytest settings, a member ``pkg`` and a mutation.toml."""
    (root / "pyproject.toml").write_text(
        '[tool.pytest.ini_options]\naddopts = ["--import-mode=importlib"]\n'
        'filterwarnings = ["error"]\n'
    )
    (root / "pkg" / "src" / "toy").mkdir(parents=True)
    (root / "pkg" / "tests").mkdir()
    (root / "pkg" / "pyproject.toml").write_text('[project]\nname = "toy"\n')
    module = root / "pkg" / "src" / "toy" / "__init__.py"
    module.write_text(TOY)
    (root / "pkg" / "tests" / "test_toy.py").write_text(textwrap.dedent(test_body))
    (root / "mutation.toml").write_text(
        textwrap.dedent(
            """\
            [[equivalent]]
            file = "pkg/src/toy/__init__.py"
            line = 16
            operator = "core/AddNot"
            source = "if flag:"
            reason = "both branches do nothing"
            """
        )
    )
    return module


def mutate(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(TOOL), "--root", str(root), "--config", "mutation.toml", *args],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_survivors_are_printed_as_diffs_and_the_score_ends_the_report(tmp_path: Path) -> None:
    module = toy_repository(
        tmp_path,
        """\
        from toy import label

        def test_label() -> None:
            assert label(1) == "on"
            assert label(0) == "off"
        """,
    )
    result = mutate(tmp_path, "pkg/src/toy/__init__.py", "--fail-under", "60")
    assert result.returncode == 1, result.stderr  # 50% is under the floor
    assert result.stdout.endswith(
        "\npkg/src/toy/__init__.py: mutation score: 50.0% (killed 1 of 2)\n"
        "under the floor of 60%: pkg/src/toy/__init__.py\n"
        "mutation score: 50.0% (killed 1 of 2)\n"
    )
    assert SURVIVOR in result.stdout
    assert result.stdout.count("survived:") == 1
    # 11 operator swaps of `int | None`, then AddNot in label (killed), check, noop (equivalent)
    assert "14 mutants, 11 in annotations, 1 recorded equivalent" in result.stderr
    assert module.read_text() == TOY  # mutants are made in a copy


def test_the_sample_is_fixed_and_a_stale_equivalent_record_is_ignored() -> None:
    moved = TOY.replace("    if flag:\n        pass", "    if flag:  # moved\n        pass")
    record = Equivalent("toy.py", 16, "core/AddNot", "both branches do nothing", "if flag:")
    lines = moved.splitlines()
    assert list(stale_records("toy.py", lines, [record])) == [
        "toy.py:16 core/AddNot: line is now 'if flag:  # moved'"
    ]
    report = Report("toy.py")
    chosen = select_mutants(report, moved, [record], sample=1)
    assert (report.generated, report.in_annotations, report.equivalent) == (14, 11, 0)
    assert report.outside_sample == 2
    assert len(chosen) == 1
    again = select_mutants(Report("toy.py"), moved, [record], sample=1)
    assert again == chosen
    current = select_mutants(Report("toy.py"), TOY, [record], sample=None)
    assert [(m.line, m.operator) for m in current] == [(5, "core/AddNot"), (11, "core/AddNot")]


def test_tests_that_fail_unmutated_stop_the_run(tmp_path: Path) -> None:
    toy_repository(
        tmp_path,
        """\
        def test_broken() -> None:
            assert False, "broken before any mutant"
        """,
    )
    result = mutate(tmp_path, "pkg/src/toy/__init__.py")
    assert result.returncode == 2
    assert "the tests of pkg/src/toy/__init__.py fail unmutated (pkg/tests)" in result.stdout
    assert "broken before any mutant" in result.stderr


@pytest.mark.parametrize(
    ("killed", "tested", "line"),
    [
        (1, 2, "mutation score: 50.0% (killed 1 of 2)"),
        (0, 0, "mutation score: 100.0% (killed 0 of 0)"),
        (2, 3, "mutation score: 66.7% (killed 2 of 3)"),
    ],
)
def test_score_line(killed: int, tested: int, line: str) -> None:
    assert score_line(killed, tested) == line


def test_annotation_spans_count_columns_in_characters() -> None:
    source = 'def f(a: "é" | int, b: int = 1) -> list[int] | None:\n    x: dict[str, int] = {}\n'
    spans = annotation_spans(source)
    assert ((1, 9), (1, 18)) in spans  # "é" | int: the é is two bytes, one character
    assert ((1, 23), (1, 26)) in spans
    assert ((1, 35), (1, 51)) in spans
    assert ((2, 7), (2, 21)) in spans

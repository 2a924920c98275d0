"""The documentation site: it builds with --strict, and its code examples run as written."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
from docs_hooks import CodeInProseFilter, member_page
from members import load_members

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted((ROOT / "docs").glob("*.md"))
FENCE = re.compile(r"^```(?P<lang>\w+)(?P<attrs>[^\n]*)\n(?P<code>.*?)^```$", re.M | re.S)


def _python_blocks(page: Path) -> list[tuple[str, str]]:
    """``(file name, code)`` for each python block: its ``title="..."`` or block_N.py."""
    blocks = []
    for number, match in enumerate(FENCE.finditer(page.read_text())):
        if match["lang"] == "python":
            title = re.search(r'title="([^"]+)"', match["attrs"])
            blocks.append((title[1] if title else f"block_{number}.py", match["code"]))
    return blocks


@pytest.mark.parametrize("page", [p for p in PAGES if _python_blocks(p)], ids=lambda p: p.name)
def test_python_examples_of_a_page_run_in_order(page: Path, tmp_path: Path) -> None:
    blocks = _python_blocks(page)
    for name, code in blocks:
        (tmp_path / name).write_text(code)
    for name, _ in blocks:
        result = subprocess.run(
            [sys.executable, name], cwd=tmp_path, capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, f"{page.name}: {name} failed\n{result.stderr}"


def test_no_install_instruction_uses_extra_index_url() -> None:
    documents = [*PAGES, ROOT / "README.md", *sorted(ROOT.glob("packages/*/README.md"))]
    for document in documents:
        for match in FENCE.finditer(document.read_text()):
            assert "extra-index-url" not in match["code"], f"{document}: {match['code']}"


def test_site_builds_strict_with_a_page_and_a_changelog_per_member(built_site: Path) -> None:
    # built_site: mkdocs build --strict, once per session (conftest.py)
    for name in load_members(ROOT):
        assert (built_site / "packages" / name / "index.html").is_file()
        assert (built_site / "changelog" / name / "index.html").is_file()
    codes = (built_site / "error-codes" / "index.html").read_text()
    assert "<code>NOT_FOUND</code>" in codes
    assert "<code>DB_DUPLICATE</code>" in codes
    # The sample registry, rendered from examples/schemas at build time, diagrams included.
    registry = (built_site / "schema-registry" / "index.html").read_text()
    assert registry.count('class="mermaid"') == 2  # the service graph and the ER diagram
    for service in ("users", "policies"):
        assert (built_site / "schema-registry" / service / "index.html").is_file()
    # The benchmark charts, shown on the Performance page from benchmarks/charts/.
    performance = (built_site / "performance" / "index.html").read_text()
    for chart in sorted((ROOT / "benchmarks" / "charts").glob("*.png")):
        assert f'src="../charts/{chart.name}"' in performance
        assert (built_site / "charts" / chart.name).read_bytes() == chart.read_bytes()


def test_member_page_includes_the_readme_and_documents_public_modules_only() -> None:
    page = member_page(load_members(ROOT)["aegis-core"])
    assert page.startswith('--8<-- "packages/aegis-core/README.md"\n')
    assert "::: aegis.core\n" in page
    assert "::: aegis.core.errors\n" in page
    assert "_problem_handlers" not in page
    meta = member_page(load_members(ROOT)["aegis-all"])
    assert ":::" not in meta


def _record(message: str) -> logging.LogRecord:
    return logging.LogRecord("autorefs", logging.WARNING, __file__, 1, message, None, None)


@pytest.mark.parametrize(
    ("target", "level"),
    [
        ("'\"card\"'", logging.INFO),
        ("'a b'", logging.INFO),
        ("'aegis.db.Missing'", logging.WARNING),
    ],
)
def test_only_code_read_as_a_reference_link_is_downgraded(target: str, level: int) -> None:
    record = _record(f"x.md: Could not find cross-reference target {target}")
    assert CodeInProseFilter().filter(record)
    assert record.levelno == level

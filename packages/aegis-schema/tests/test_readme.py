"""The README's Python examples run as written, on a copy of examples/schemas and SQLite."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from aegis.schema import RULES

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_examples_run(
    examples_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(examples_dir, tmp_path / "work" / "schemas")
    monkeypatch.chdir(tmp_path / "work")
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.DOTALL)
    assert len(blocks) == 2
    namespace: dict[str, object] = {}
    exec(compile("\n".join(blocks), str(README), "exec"), namespace)  # noqa: S102 - the doc under test
    assert (tmp_path / "work" / "users.db").is_file()


def test_readme_documents_every_rule_and_error_code() -> None:
    text = README.read_text()
    for code, rule in RULES.items():
        assert f"| {code} | {rule.name} |" in text
    for code in [
        "SCHEMA_INVALID",
        "SCHEMA_DEPENDENCY_CYCLE",
        "SCHEMA_VERSION_CONFLICT",
        "SCHEMA_MIGRATION_BLOCKED",
        "SCHEMA_MIGRATION_LOCKED",
        "SCHEMA_MIGRATION_FAILED",
    ]:
        assert f"`{code}`" in text

"""The README quick start runs as written on SQLite, and on PostgreSQL with only its URL changed."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
README_URL = '"sqlite:///app.db"'


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_readme_quick_start_runs(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    quick_start = re.findall(r"```python\n(.*?)```", README.read_text(), re.DOTALL)[0]
    assert quick_start.count(README_URL) == 1
    if backend == "postgresql":
        # The quick start reads error.details["fields"], which PostgreSQL reports differently.
        url: str = request.getfixturevalue("postgres_database")
        quick_start = quick_start.replace(README_URL, repr(url))
    monkeypatch.chdir(tmp_path)
    # SQLAlchemy resolves Mapped[...] annotations through sys.modules: give the code a module.
    module = types.ModuleType("aegis_db_readme")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    exec(compile(quick_start, str(README), "exec"), module.__dict__)  # noqa: S102 - the doc under test
    assert (tmp_path / "app.db").exists() == (backend == "sqlite")


def test_readme_lists_every_error_code_aegis_db_registers() -> None:
    text = README.read_text()
    for code in ["DB_DUPLICATE", "DB_FOREIGN_KEY", "DB_CONFLICT", "DB_TIMEOUT", "DB_UNAVAILABLE"]:
        assert f"`{code}`" in text

"""modules_loaded_by: what statements load in a fresh interpreter, and only that."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from aegis.testing import modules_loaded_by


def test_reports_the_modules_the_statements_add() -> None:
    loaded = modules_loaded_by("import colorsys, fractions")
    assert {"colorsys", "fractions"} <= loaded
    assert "json" not in loaded  # loaded by the harness before the statements ran


def test_output_of_the_statements_is_ignored_and_cwd_is_used(tmp_path: Path) -> None:
    (tmp_path / "local_module.py").write_text("print('hello from the module')\n")
    loaded = modules_loaded_by("import local_module\nprint('more output')", cwd=tmp_path)
    assert "local_module" in loaded


def test_failing_statements_raise_with_their_error() -> None:
    with pytest.raises(subprocess.CalledProcessError) as failed:
        modules_loaded_by("import no_such_module_here")
    assert "ModuleNotFoundError" in failed.value.stderr

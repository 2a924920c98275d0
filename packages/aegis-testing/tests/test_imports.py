"""modules_loaded_by and import_error_without: imports run in a fresh interpreter."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from aegis.testing import import_error_without, modules_loaded_by


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


def test_import_error_without_reports_what_a_user_without_the_library_reads() -> None:
    message = import_error_without(["colorsys"], "import colorsys")
    assert message == "No module named 'colorsys'"
    assert import_error_without(["json"], "import fractions\nx = 1") is None


def test_import_error_without_passes_other_failures_on() -> None:
    with pytest.raises(subprocess.CalledProcessError):
        import_error_without([], "raise ValueError('not an import error')")

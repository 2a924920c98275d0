"""`import aegis.config` loads pydantic-settings and no optional extra."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

# The extras' libraries load when a setting uses them: Vault, YAML files, encrypted values.
DEFERRED = {"httpx", "yaml", "cryptography", "aegis.core.utils.security"}


def _modules_loaded_by(statements: str, cwd: Path | None = None) -> set[str]:
    # Only what the statements add: a coverage run has loaded its own modules (sqlite3) already.
    script = (
        f"import json, sys\nbefore = set(sys.modules)\n{statements}\n"
        "print(json.dumps(sorted(set(sys.modules) - before)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=cwd
    )
    return set(json.loads(result.stdout))


def test_import_aegis_config_does_not_import_the_extras() -> None:
    loaded = _modules_loaded_by("import aegis.config")
    assert sorted(loaded & DEFERRED) == []


def test_loading_settings_without_vault_or_yaml_leaves_them_unloaded(tmp_path: Path) -> None:
    loaded = _modules_loaded_by(
        "from aegis.config import AegisSettings\n"
        "class Settings(AegisSettings):\n"
        "    name: str = 'users'\n"
        "Settings.load(environment='test')",
        cwd=tmp_path,  # no .env files around
    )
    assert sorted(loaded & DEFERRED) == []

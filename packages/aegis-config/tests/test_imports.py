"""`import aegis.config` loads pydantic-settings and no optional extra."""

from __future__ import annotations

from pathlib import Path

from aegis.testing import modules_loaded_by

# The extras' libraries load when a setting uses them: Vault, YAML files, encrypted values.
DEFERRED = {"httpx", "yaml", "cryptography", "aegis.core.utils.security"}


def test_import_aegis_config_does_not_import_the_extras() -> None:
    loaded = modules_loaded_by("import aegis.config")
    assert sorted(loaded & DEFERRED) == []


def test_loading_settings_without_vault_or_yaml_leaves_them_unloaded(tmp_path: Path) -> None:
    loaded = modules_loaded_by(
        "from aegis.config import AegisSettings\n"
        "class Settings(AegisSettings):\n"
        "    name: str = 'users'\n"
        "Settings.load(environment='test')",
        cwd=tmp_path,  # no .env files around
    )
    assert sorted(loaded & DEFERRED) == []


def test_help_and_import_load_no_settings_machinery() -> None:
    heavy = {"pydantic_settings", "aegis.core.models", "aegis.config._settings"}
    assert sorted(modules_loaded_by("import aegis.config") & heavy) == []
    loaded = modules_loaded_by(
        "from aegis.config._cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass"
    )
    assert sorted(loaded & heavy) == []

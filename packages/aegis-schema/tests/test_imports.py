"""`import aegis.schema` and `aegis-schema --help` stay lean: SQLAlchemy, Alembic and the
models load with the first name, or the first command, that needs them."""

from __future__ import annotations

from aegis.testing import modules_loaded_by

HEAVY = {"sqlalchemy", "alembic", "pydantic", "aegis.schema._models", "aegis.schema._cli_commands"}


def test_import_aegis_schema_loads_only_its_errors() -> None:
    loaded = modules_loaded_by("import aegis.schema")
    assert sorted(loaded & HEAVY) == []
    assert "aegis.schema._errors" in loaded  # the SCHEMA_* codes are registered at import


def test_help_loads_no_database_library_and_no_model() -> None:
    loaded = modules_loaded_by(
        "from aegis.schema._cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass"
    )
    assert sorted(loaded & HEAVY) == []


def test_a_command_loads_what_it_needs() -> None:
    loaded = modules_loaded_by(
        "from aegis.schema._cli import main\nmain(['erd', '--registry', '/nonexistent'])"
    )
    assert {"aegis.schema._cli_commands", "aegis.schema._models"} <= loaded

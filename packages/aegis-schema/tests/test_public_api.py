"""The public names of aegis.schema: an addition or removal shows up here in review."""

from __future__ import annotations

import aegis.schema
from aegis.core.errors import ERROR_CODES


def test_public_names_are_exactly_these() -> None:
    assert aegis.schema.__all__ == [
        "DEFAULT_HISTORY_URL",
        "PORTABLE_TYPES",
        "REGISTRY_RULES",
        "RULES",
        "ColumnType",
        "CompatibilityMode",
        "DependencyCycleError",
        "DependencyGraph",
        "Finding",
        "HistoryStore",
        "ImpactReport",
        "MigrationBlockedError",
        "MigrationCoordinator",
        "MigrationFailedError",
        "MigrationLockedError",
        "MigrationPlan",
        "MigrationRule",
        "MigrationRun",
        "MigrationStatus",
        "MigrationStep",
        "Operation",
        "Problem",
        "SchemaColumn",
        "SchemaDefinition",
        "SchemaIndex",
        "SchemaReference",
        "SchemaRegistry",
        "SchemaValidationError",
        "SchemaVersionConflictError",
        "ServiceInfo",
        "Severity",
        "TypeChange",
        "__version__",
        "compatibility_problems",
        "diff_schemas",
        "is_compatible",
        "parse_version",
        "pending_migration",
        "plan_migration",
        "render_erd",
        "render_index_markdown",
        "render_service_graph",
        "render_service_markdown",
        "schema_page",
        "schema_page_assets",
        "validate_schemas",
        "write_docs",
        "write_html_site",
    ]
    assert all(hasattr(aegis.schema, name) for name in aegis.schema.__all__)
    assert aegis.schema.__version__ == "0.1.0"


def test_every_public_name_has_a_docstring() -> None:
    undocumented = [
        name
        for name in aegis.schema.__all__
        if callable(getattr(aegis.schema, name)) and not getattr(aegis.schema, name).__doc__
    ]
    assert undocumented == []


def test_every_rule_has_a_code_name_severity_and_safe_alternative() -> None:
    codes = sorted(aegis.schema.RULES)
    assert codes == [
        "BC101",
        "BC102",
        "BC103",
        "CD101",
        "DS101",
        "DS102",
        "DS103",
        "MF101",
        "MF102",
        "MF103",
        "MF104",
        "RI101",
        "TC101",
        "TC102",
    ]
    for code, rule in aegis.schema.RULES.items():
        assert rule.code == code
        assert rule.name
        assert rule.summary
        assert rule.safe_alternative


def test_errors_have_stable_codes() -> None:
    for code, status in [
        ("SCHEMA_INVALID", 422),
        ("SCHEMA_DEPENDENCY_CYCLE", 422),
        ("SCHEMA_VERSION_CONFLICT", 409),
        ("SCHEMA_MIGRATION_BLOCKED", 409),
        ("SCHEMA_MIGRATION_LOCKED", 409),
        ("SCHEMA_MIGRATION_FAILED", 500),
    ]:
        assert ERROR_CODES[code].status == status

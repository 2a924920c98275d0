"""aegis.schema: a central schema registry and a cross-service migration coordinator.

Tables of every service live in YAML files (``registry.yaml`` lists them); the registry checks
references between services, draws the dependency graph and ER diagrams, and plans, checks,
runs and rolls back migrations across the services' databases in dependency order.
"""

from typing import TYPE_CHECKING

from aegis.core.utils.lazy import lazy_getattr
from aegis.schema.__about__ import __version__
from aegis.schema._errors import (
    DependencyCycleError,
    MigrationBlockedError,
    MigrationFailedError,
    MigrationLockedError,
    SchemaValidationError,
    SchemaVersionConflictError,
)

if TYPE_CHECKING:
    from aegis.schema._compat import CompatibilityMode, compatibility_problems, is_compatible
    from aegis.schema._coordinator import MigrationCoordinator
    from aegis.schema._diff import diff_schemas
    from aegis.schema._docs import (
        render_erd,
        render_index_markdown,
        render_service_graph,
        render_service_markdown,
        write_docs,
    )
    from aegis.schema._graph import DependencyGraph
    from aegis.schema._history import HistoryStore
    from aegis.schema._html import write_html_site
    from aegis.schema._impact import ImpactReport
    from aegis.schema._models import (
        SchemaColumn,
        SchemaDefinition,
        SchemaIndex,
        SchemaReference,
        parse_version,
    )
    from aegis.schema._operations import Operation
    from aegis.schema._pending import pending_migration
    from aegis.schema._plan import (
        MigrationPlan,
        MigrationRun,
        MigrationStep,
        plan_migration,
    )
    from aegis.schema._problems import Problem, Severity
    from aegis.schema._registry import SchemaRegistry, ServiceInfo
    from aegis.schema._rules import RULES, Finding, MigrationRule
    from aegis.schema._status import DEFAULT_HISTORY_URL, MigrationStatus
    from aegis.schema._types import PORTABLE_TYPES, ColumnType, TypeChange
    from aegis.schema._validation import REGISTRY_RULES, validate_schemas
    from aegis.schema._web import schema_page, schema_page_assets

# Every name but the errors (which register their codes) is imported on first use (PEP 562),
# so that `import aegis.schema` costs almost nothing: the models build pydantic schemas,
# planning and migrations load SQLAlchemy and Alembic (benchmarks/import_time.py).
_LAZY = {
    "ColumnType": "aegis.schema._types",
    "CompatibilityMode": "aegis.schema._compat",
    "DEFAULT_HISTORY_URL": "aegis.schema._status",
    "DependencyGraph": "aegis.schema._graph",
    "Finding": "aegis.schema._rules",
    "HistoryStore": "aegis.schema._history",
    "ImpactReport": "aegis.schema._impact",
    "MigrationCoordinator": "aegis.schema._coordinator",
    "MigrationPlan": "aegis.schema._plan",
    "MigrationRule": "aegis.schema._rules",
    "MigrationRun": "aegis.schema._plan",
    "MigrationStatus": "aegis.schema._status",
    "MigrationStep": "aegis.schema._plan",
    "Operation": "aegis.schema._operations",
    "PORTABLE_TYPES": "aegis.schema._types",
    "Problem": "aegis.schema._problems",
    "REGISTRY_RULES": "aegis.schema._validation",
    "RULES": "aegis.schema._rules",
    "SchemaColumn": "aegis.schema._models",
    "SchemaDefinition": "aegis.schema._models",
    "SchemaIndex": "aegis.schema._models",
    "SchemaReference": "aegis.schema._models",
    "SchemaRegistry": "aegis.schema._registry",
    "ServiceInfo": "aegis.schema._registry",
    "Severity": "aegis.schema._problems",
    "TypeChange": "aegis.schema._types",
    "compatibility_problems": "aegis.schema._compat",
    "diff_schemas": "aegis.schema._diff",
    "is_compatible": "aegis.schema._compat",
    "parse_version": "aegis.schema._models",
    "pending_migration": "aegis.schema._pending",
    "plan_migration": "aegis.schema._plan",
    "render_erd": "aegis.schema._docs",
    "render_index_markdown": "aegis.schema._docs",
    "render_service_graph": "aegis.schema._docs",
    "render_service_markdown": "aegis.schema._docs",
    "schema_page": "aegis.schema._web",
    "schema_page_assets": "aegis.schema._web",
    "validate_schemas": "aegis.schema._validation",
    "write_docs": "aegis.schema._docs",
    "write_html_site": "aegis.schema._html",
}

__getattr__ = lazy_getattr(__name__, _LAZY)

__all__ = [
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

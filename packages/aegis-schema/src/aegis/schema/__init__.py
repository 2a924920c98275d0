"""aegis.schema: a central schema registry and a cross-service migration coordinator.

Tables of every service live in YAML files (``registry.yaml`` lists them); the registry checks
references between services, draws the dependency graph and ER diagrams, and plans, checks,
runs and rolls back migrations across the services' databases in dependency order.
"""

from aegis.schema.__about__ import __version__
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
from aegis.schema._errors import (
    DependencyCycleError,
    MigrationBlockedError,
    MigrationFailedError,
    MigrationLockedError,
    SchemaValidationError,
    SchemaVersionConflictError,
)
from aegis.schema._graph import DependencyGraph
from aegis.schema._history import DEFAULT_HISTORY_URL, HistoryStore
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
    MigrationStatus,
    MigrationStep,
    plan_migration,
)
from aegis.schema._problems import Problem, Severity
from aegis.schema._registry import SchemaRegistry, ServiceInfo
from aegis.schema._rules import RULES, Finding, MigrationRule
from aegis.schema._types import PORTABLE_TYPES, ColumnType, TypeChange
from aegis.schema._validation import REGISTRY_RULES, validate_schemas
from aegis.schema._web import schema_page, schema_page_assets

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

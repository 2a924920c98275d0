"""The errors aegis.schema raises, each an AegisError with a stable code."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from aegis.core.errors import (
    ConflictError,
    DatabaseError,
    FieldError,
    InvalidInputError,
    register_error_code,
)
from aegis.schema._problems import Problem, Severity

if TYPE_CHECKING:
    from aegis.schema._plan import MigrationRun
    from aegis.schema._rules import Finding

register_error_code("SCHEMA_INVALID", 422, "Invalid schema registry")
register_error_code("SCHEMA_DEPENDENCY_CYCLE", 422, "Schema dependency cycle")
register_error_code("SCHEMA_VERSION_CONFLICT", 409, "Schema version conflict")
register_error_code("SCHEMA_MIGRATION_BLOCKED", 409, "Migration blocked by its checks")
register_error_code("SCHEMA_MIGRATION_LOCKED", 409, "Another migration is running")
register_error_code("SCHEMA_MIGRATION_FAILED", 500, "Migration failed and was rolled back")


class SchemaValidationError(InvalidInputError):
    """A registry file or definition breaks rules; ``problems`` lists every one (HTTP 422)."""

    default_code = "SCHEMA_INVALID"

    def __init__(self, problems: Sequence[Problem], *, code: str | None = None) -> None:
        errors = [p for p in problems if p.severity == Severity.ERROR] or list(problems)
        summary = "; ".join(str(problem) for problem in errors[:3])
        more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
        super().__init__(
            f"{len(errors)} schema problem(s): {summary}{more}",
            errors=[
                FieldError(f"{p.file or '<registry>'}:{p.line or 0}", p.message, p.rule)
                for p in errors
            ],
            code=code,
        )
        self.problems = list(problems)


class DependencyCycleError(SchemaValidationError):
    """References form a cycle, so no migration order exists; ``cycle`` names it (HTTP 422)."""

    default_code = "SCHEMA_DEPENDENCY_CYCLE"

    def __init__(self, cycle: Sequence[str], *, what: str = "services") -> None:
        self.cycle = list(cycle)
        path = " -> ".join([*cycle, cycle[0]])
        super().__init__([Problem("dependency-cycle", f"{what} depend on each other: {path}")])


class SchemaVersionConflictError(ConflictError):
    """A new version does not increase the version, or lacks the major bump it needs (409)."""

    default_code = "SCHEMA_VERSION_CONFLICT"


class MigrationBlockedError(ConflictError):
    """Checks found errors that were not allowed; ``findings`` lists them (HTTP 409)."""

    default_code = "SCHEMA_MIGRATION_BLOCKED"

    def __init__(self, findings: Sequence[Finding]) -> None:
        codes = sorted({finding.code for finding in findings})
        super().__init__(
            f"migration blocked by {len(findings)} finding(s) ({', '.join(codes)}); fix them or "
            "allow their rules explicitly",
            details={"findings": [finding.to_dict() for finding in findings]},
        )
        self.findings = list(findings)


class MigrationLockedError(ConflictError):
    """Another coordinator holds the migration lock (HTTP 409)."""

    default_code = "SCHEMA_MIGRATION_LOCKED"


class MigrationFailedError(DatabaseError):
    """A step failed; the completed steps were rolled back. ``run`` has every step's state."""

    default_code = "SCHEMA_MIGRATION_FAILED"

    def __init__(self, message: str, run: MigrationRun) -> None:
        super().__init__(message, details={"run_id": run.id})
        self.run = run

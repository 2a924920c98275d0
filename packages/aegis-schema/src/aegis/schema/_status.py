"""Names the plan, the history store and the command line share, free of SQLAlchemy and pydantic.

``aegis-schema --help`` builds its parser from these alone (benchmarks/import_time.py).
"""

from __future__ import annotations

from enum import StrEnum

DEFAULT_HISTORY_URL = "sqlite:///aegis-schema-history.db"
"""Where the coordinator keeps its runs when no history database is named."""


class MigrationStatus(StrEnum):
    """State of a migration step or run."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    ROLLED_BACK = "ROLLED_BACK"

"""Problems found in a registry: each names the file, the line and the rule it breaks."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Severity(StrEnum):
    """How serious a problem or finding is; only errors fail a check or block a migration."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True)
class Problem:
    """One broken rule in a registry file.

    ``str(problem)`` reads like a compiler message: ``users.yaml:12: reference-unknown-column:
    ...``. ``subject`` is the ``service.table`` (or service) the problem is about.
    """

    rule: str
    message: str
    file: str | None = None
    line: int | None = None
    severity: Severity = Severity.ERROR
    subject: str = ""

    def __str__(self) -> str:
        where = self.file or "<registry>"
        if self.line is not None:
            where = f"{where}:{self.line}"
        return f"{where}: {self.severity}: {self.rule}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        """Return the problem as a JSON-ready dict."""
        return {
            "rule": self.rule,
            "severity": str(self.severity),
            "message": self.message,
            "file": self.file,
            "line": self.line,
            "subject": self.subject,
        }

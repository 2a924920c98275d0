"""What an import really loads, measured in a fresh interpreter: guards for lean start-up."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def modules_loaded_by(statements: str, *, cwd: str | Path | None = None) -> set[str]:
    """Run ``statements`` in a fresh interpreter and return the modules they added.

    Only what the statements add counts: modules the interpreter had already loaded (site
    hooks, a coverage run's own imports) are left out. Output the statements print is ignored.

    Example:
        >>> "gzip" in modules_loaded_by("import aegis.log")
        False

    Raises:
        subprocess.CalledProcessError: the statements failed; its ``stderr`` says why.
    """
    script = (
        f"import json, sys\nbefore = set(sys.modules)\n{statements}\n"
        "print(json.dumps(sorted(set(sys.modules) - before)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=cwd
    )
    loaded: list[str] = json.loads(result.stdout.splitlines()[-1])
    return set(loaded)

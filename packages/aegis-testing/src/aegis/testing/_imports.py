"""Imports measured in a fresh interpreter: what they load, and what they say without an extra."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterable
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


# Installed first in the child interpreter: the named top-level modules cannot be imported.
_HIDE = """
import sys
from importlib.abc import MetaPathFinder

class _Hide(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in HIDDEN:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, _Hide())
"""


def import_error_without(libraries: Iterable[str], statements: str) -> str | None:
    """Run ``statements`` where ``libraries`` are not installed; the ImportError they raise.

    A fresh interpreter runs them with each named top-level module impossible to import (as
    if an optional extra were missing) and returns the message of the ``ImportError`` they
    raised, or ``None`` when they raised none: what a user without the extra would read.

    Example:
        >>> message = import_error_without(["fastapi"], "from aegis.auth import CurrentUser")
        >>> message.endswith("pip install 'aegis-auth[fastapi]'")
        True

    Raises:
        subprocess.CalledProcessError: the statements failed with another error.
    """
    body = "\n".join(f"    {line}" for line in statements.splitlines())
    script = (
        f"HIDDEN = {sorted(set(libraries))!r}\n{_HIDE}\n"
        f"try:\n{body}\nexcept ImportError as exc:\n    print(repr(str(exc)))\n"
        "else:\n    print(None)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    message: str | None = ast.literal_eval(result.stdout.splitlines()[-1])
    return message

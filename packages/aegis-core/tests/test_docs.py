"""The README documents every error code aegis-core defines, with the status it answers."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def _core_codes() -> dict[str, str]:
    # A fresh interpreter: other members loaded in this test session register codes of their own,
    # which their READMEs document.
    script = (
        "import json; from aegis.core.errors import ERROR_CODES; "
        "print(json.dumps({code: str(entry.status) for code, entry in ERROR_CODES.items()}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    codes: dict[str, str] = json.loads(result.stdout)
    return codes


def test_readme_lists_every_error_code_with_its_status() -> None:
    rows = dict(re.findall(r"^\| `([A-Z_]+)` \| (\d{3}) \|", README.read_text(), re.MULTILINE))
    assert rows == _core_codes()

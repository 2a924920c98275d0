"""The README documents every error code with the status it answers."""

from __future__ import annotations

import re
from pathlib import Path

from aegis.core.errors import ERROR_CODES

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_lists_every_error_code_with_its_status() -> None:
    rows = dict(re.findall(r"^\| `([A-Z_]+)` \| (\d{3}) \|", README.read_text(), re.MULTILINE))
    assert rows == {code: str(entry.status) for code, entry in ERROR_CODES.items()}

"""The README's masking example runs as written and prints the lines it shows."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def blocks(heading: str, language: str) -> list[str]:
    """The fenced blocks of ``language`` in the section under ``heading``."""
    section = README.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(rf"```{language}\n(.*?)```", section, re.DOTALL)


def shown_in(shown: Any, actual: Any) -> bool:
    """Whether everything the README shows is in the actual value (lists element by element)."""
    if isinstance(shown, dict):
        return isinstance(actual, dict) and all(
            key in actual and shown_in(value, actual[key]) for key, value in shown.items()
        )
    if isinstance(shown, list):
        return isinstance(actual, list) and all(map(shown_in, shown, actual))
    return bool(shown == actual)


def test_masking_example_prints_the_lines_it_shows(capsys: pytest.CaptureFixture[str]) -> None:
    (code,) = blocks("Masking and bad input", "python")
    (expected,) = blocks("Masking and bad input", "json")
    exec(code, {})  # noqa: S102 - the README's own code
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    shown = [json.loads(line) for line in expected.splitlines()]
    assert len(printed) == len(shown)
    for line, documented in zip(printed, shown, strict=True):
        assert shown_in(documented, line), (documented, line)
    assert "hunter2" not in json.dumps(printed)
    assert "s3cret" not in json.dumps(printed)

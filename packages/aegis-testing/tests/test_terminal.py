"""terminal_stderr(): what a command writes to standard error, seen by a real pseudo-terminal."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from aegis.testing import terminal_stderr

README = Path(__file__).resolve().parent.parent / "README.md"


def test_standard_error_is_a_terminal_in_the_block_and_put_back_after() -> None:
    before = sys.stderr
    with terminal_stderr() as terminal:
        assert sys.stderr.isatty()
        sys.stderr.write("one\n\rtwo 1\rtwo 2   \n")
        subprocess.run(
            [sys.executable, "-c", "import sys; print(sys.stderr.isatty(), file=sys.stderr)"],
            stderr=sys.stderr,
            check=True,
        )
    assert sys.stderr is before
    assert terminal.text == "one\n\rtwo 1\rtwo 2   \nTrue\n"  # raw: no \r added before \n
    assert terminal.lines() == ["one", "two 2", "True"]


def test_standard_error_is_put_back_when_the_block_raises() -> None:
    before = sys.stderr
    with pytest.raises(RuntimeError), terminal_stderr():
        raise RuntimeError("boom")
    assert sys.stderr is before


def test_the_readme_example_passes(capsys: pytest.CaptureFixture[str]) -> None:
    section = README.read_text().split("## What a command shows a person", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert code is not None
    namespace: dict[str, object] = {}
    exec(compile(code[1], str(README), "exec"), namespace)  # noqa: S102 - our own documentation
    test = namespace["test_progress_shows_on_a_terminal_only"]
    assert callable(test)
    test(capsys)

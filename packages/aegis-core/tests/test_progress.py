"""ProgressReporter: step lines and an in-place counter on a terminal, silence elsewhere."""

from __future__ import annotations

import io
import re
import sys
from pathlib import Path

import pytest

from aegis.core.progress import ProgressReporter
from aegis.testing import terminal_stderr


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def reporter(clock: Clock) -> tuple[ProgressReporter, io.StringIO]:
    stream = io.StringIO()
    return ProgressReporter(stream, enabled=True, clock=clock), stream


def test_steps_print_a_start_line_and_an_end_line_with_their_seconds() -> None:
    clock = Clock()
    progress, stream = reporter(clock)
    progress.started("users: users.users@2.0.0")
    clock.now += 0.4
    assert progress.finished("users: users.users@2.0.0") == pytest.approx(0.4)

    def broken_step() -> None:
        with progress.step("policies: policies.policies@2.0.0"):
            clock.now += 1.2
            raise RuntimeError("broken")

    with pytest.raises(RuntimeError):
        broken_step()
    progress.line("done")
    assert stream.getvalue().splitlines() == [
        "   0.0s  users: users.users@2.0.0 ...",
        "   0.4s  users: users.users@2.0.0 ok in 0.40s",
        "   0.4s  policies: policies.policies@2.0.0 ...",
        "   1.6s  policies: policies.policies@2.0.0 failed in 1.20s",
        "   1.6s  done",
    ]


def test_a_counter_redraws_in_place_at_most_every_tenth_of_a_second() -> None:
    clock = Clock()
    progress, stream = reporter(clock)
    progress.count("replayed 1/100")
    clock.now += 0.05
    progress.count("replayed 2/100")  # too soon: not drawn yet
    clock.now += 0.06
    progress.count("replayed 3/100")
    progress.count("replayed 4/100, 1 failed")  # too soon, but the next line draws it first
    progress.line("next")
    progress.count("replayed 100/100", final=True)
    assert stream.getvalue() == (
        "\r   0.0s  replayed 1/100"
        "\r   0.1s  replayed 3/100"
        "\r   0.1s  replayed 4/100, 1 failed\n"
        "   0.1s  next\n"
        "\r   0.1s  replayed 100/100\n"
    )


def test_a_shorter_counter_text_blanks_the_rest_of_the_longer_one() -> None:
    clock = Clock()
    progress, stream = reporter(clock)
    progress.count("reading orders.DLT: 10 selected")
    clock.now += 1
    progress.count("read 10", final=True)
    progress.close()  # nothing open: writes nothing
    first, second = stream.getvalue().removesuffix("\n").split("\r")[1:]
    assert second == "   1.0s  read 10" + " " * (len(first) - len("   1.0s  read 10"))


def test_silent_where_the_stream_is_not_a_terminal() -> None:
    stream = io.StringIO()
    progress = ProgressReporter(stream)
    with progress.step("users"):
        progress.count("1/2")
        progress.count("2/2", final=True)
    progress.close()
    assert (progress.enabled, stream.getvalue()) == (False, "")


def test_on_a_terminal_it_writes_to_standard_error_by_default() -> None:
    with terminal_stderr() as terminal:
        progress = ProgressReporter()
        assert progress.stream is sys.stderr
        progress.line("users ...")
    assert progress.enabled
    assert terminal.lines() == ["   0.0s  users ..."]


def test_the_readme_example_prints_what_the_readme_shows() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("### Progress for command line tools", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    shown = section.split("```text\n", 1)[1].split("```", 1)[0]
    with terminal_stderr() as terminal:
        exec(compile(code, "README.md", "exec"), {})  # noqa: S102 - our own documentation

    def times_hidden(lines: list[str]) -> list[str]:
        return [re.sub(r"\d+\.\d+s", "N.Ns", line) for line in lines]

    assert times_hidden(terminal.lines()) == times_hidden(shown.splitlines())

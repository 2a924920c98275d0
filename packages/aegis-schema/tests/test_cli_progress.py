"""``aegis-schema migrate`` and ``rollback`` show progress on a terminal, nothing in a pipe."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from aegis.schema._cli import main
from aegis.testing import terminal_stderr

STAMP = r"\s*\d+\.\ds  "  # the seconds since the command began, leading every line


def _expected_lines(steps: list[tuple[str, str]]) -> list[str]:
    """A start line and an ``ok in N.NNs`` line per ``(service, step id)``, as patterns."""
    total = len(steps)
    lines = []
    for position, (service, step) in enumerate(steps, start=1):
        name = re.escape(f"[{position}/{total}] {service}: {step}")
        lines += [f"{STAMP}{name} \\.\\.\\.", f"{STAMP}{name} ok in \\d+\\.\\d\\ds"]
    return lines


def _assert_lines(lines: list[str], patterns: list[str]) -> None:
    assert len(lines) == len(patterns), lines
    for line, pattern in zip(lines, patterns, strict=True):
        assert re.fullmatch(pattern, line), (line, pattern)


@pytest.mark.parametrize("service_urls", ["postgresql"], indirect=True)
def test_migrate_and_rollback_show_each_step_on_a_terminal_and_nothing_in_a_pipe(
    registry_dir: Path,
    tmp_path: Path,
    service_urls: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    databases = ["--history", f"sqlite:///{tmp_path / 'history.db'}"]
    for service, url in service_urls.items():
        databases += ["--url", f"{service}={url}"]
    steps = [("users", "users.users@1.0.0"), ("policies", "policies.policies@1.0.0")]
    undo = [(service, f"{step}:rollback") for service, step in reversed(steps)]

    def deployed(name: str) -> list[str]:
        """A registry directory with no tables yet, as ``--registry``."""
        (tmp_path / name).mkdir()
        (tmp_path / name / "registry.yaml").write_text("services: {}\n")
        return ["--registry", str(tmp_path / name), *databases]

    # Standard error is a pipe: the results only, as scripts always had them.
    first = deployed("first")
    assert main(["migrate", *first, "--to", str(registry_dir), "--format", "json"]) == 0
    out, err = capsys.readouterr()
    run = json.loads(out)
    assert (run["status"], err) == ("COMPLETED", "")
    assert [line.split(":")[0] for line in run["log"]] == [step for _, step in steps]

    with terminal_stderr() as terminal:
        assert main(["rollback", *first, run["id"]]) == 0
    _assert_lines(terminal.lines(), _expected_lines(undo))
    assert re.fullmatch(r"run \S+: COMPLETED\n", capsys.readouterr().out)

    second = deployed("second")  # the tables are gone again: the same two steps
    with terminal_stderr() as terminal:
        assert main(["migrate", *second, "--to", str(registry_dir)]) == 0
    checking = f"{STAMP}2 step\\(s\\) on users, policies: checking the data \\.\\.\\."
    _assert_lines(terminal.lines(), [checking, *_expected_lines(steps)])
    run_id = capsys.readouterr().out.split()[1].rstrip(":")

    assert main(["rollback", *second, run_id]) == 0
    out, err = capsys.readouterr()
    assert (re.fullmatch(r"run \S+: COMPLETED\n", out) is not None, err) == (True, "")

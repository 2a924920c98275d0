"""docs/ci-cd.md: the workflows it shows for a service are valid GitHub Actions workflows.

actionlint (with shellcheck for the run: scripts) checks each block titled
``.github/workflows/NAME.yml``, the same check ``./dev lint`` runs on this repository's own.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "ci-cd.md"
BIN = Path(sys.executable).parent
_WORKFLOW = re.compile(
    r'^```yaml title="(?P<path>\.github/workflows/[\w.-]+\.yml)"\n(?P<body>.*?)^```$', re.M | re.S
)


def test_the_pages_workflows_pass_actionlint(tmp_path: Path) -> None:
    workflows = {m["path"]: m["body"] for m in _WORKFLOW.finditer(PAGE.read_text())}
    assert ".github/workflows/service.yml" in workflows
    for path, body in workflows.items():
        target = tmp_path / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(body)
    linted = subprocess.run(
        [str(BIN / "actionlint"), "-shellcheck", str(BIN / "shellcheck"), *workflows],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert linted.returncode == 0, linted.stdout + linted.stderr


def test_the_service_workflow_installs_from_the_private_index_only() -> None:
    (body,) = [m["body"] for m in _WORKFLOW.finditer(PAGE.read_text()) if "service" in m["path"]]
    workflow = yaml.safe_load(body)
    assert workflow["env"]["PIP_INDEX_URL"].endswith("/simple/")
    assert workflow["env"]["UV_DEFAULT_INDEX"] == workflow["env"]["PIP_INDEX_URL"]
    assert "extra-index-url" not in body.lower().replace("_", "-")

"""The aegis-schema command line, end to end on SQLite service databases."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from aegis.schema import MigrationStatus, SchemaRegistry
from aegis.schema._cli import main


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_init_scaffolds_a_valid_registry_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "reg"
    assert _run(capsys, "init", "--registry", str(root))[0] == 0
    assert (root / "registry.yaml").read_text().startswith("# Schema registry")
    assert _run(capsys, "validate", "--registry", str(root)) == (0, "ok\n", "")
    code, _, err = _run(capsys, "init", "--registry", str(root))
    assert code == 1
    assert "already exists" in err


def test_validate_reports_file_line_rule_and_exit_code(
    registry_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(capsys, "validate", "--registry", str(registry_dir))[0] == 0
    _edit(
        registry_dir / "policies.yaml", "references: users.users.id", "references: users.users.uid"
    )
    code, out, _ = _run(capsys, "validate", "--registry", str(registry_dir))
    assert code == 1
    assert out.startswith("policies.yaml:38: error: reference-unknown-column: ")
    code, out, _ = _run(capsys, "validate", "--registry", str(registry_dir), "--format", "json")
    assert code == 1
    assert json.loads(out)["problems"][0]["rule"] == "reference-unknown-column"
    _edit(
        registry_dir / "users.yaml", "type: uuid\n    primary_key", "type: money\n    primary_key"
    )
    code, out, _ = _run(capsys, "validate", "--registry", str(registry_dir))
    assert (code, out.splitlines()[0].split(": ")[:3]) == (
        1,
        ["users.yaml:9", "error", "invalid-type"],
    )


def test_validate_to_checks_compatibility_and_the_version_bump(
    registry_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "next"
    shutil.copytree(registry_dir, target)
    _edit(target / "users.yaml", "string(320)", "string(100)")
    _edit(target / "users.yaml", "version: 1.0.0", "version: 1.1.0")
    code, out, _ = _run(capsys, "validate", "--registry", str(registry_dir), "--to", str(target))
    assert code == 1
    assert "type-narrowed" in out
    assert "users.yaml:4: error: version-bump: users.users: version 1.1.0 must be 2.0.0" in out
    _edit(target / "users.yaml", "version: 1.1.0", "version: 2.0.0")
    assert (
        _run(capsys, "validate", "--registry", str(registry_dir), "--to", str(target))[0] == 1
    )  # still reported
    shutil.rmtree(target)
    shutil.copytree(registry_dir, target)
    _edit(
        target / "users.yaml", "description: Accounts that can sign in.", "description: Accounts."
    )
    code, out, _ = _run(capsys, "validate", "--registry", str(registry_dir), "--to", str(target))
    assert (code, out.splitlines()[0]) == (
        1,
        "users.yaml:4: error: version-bump: users.users: version 1.0.0 must be above 1.0.0",
    )


def test_graph_in_every_form(registry_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    registry = ["--registry", str(registry_dir)]
    assert _run(capsys, "graph", *registry) == (
        0,
        "policies -> users\nmigration order: users, policies\n",
        "",
    )
    assert (
        _run(capsys, "graph", *registry, "--service", "users")[1]
        == "users depends on: none\nusers is used by: policies\n"
    )
    assert json.loads(_run(capsys, "graph", *registry, "--format", "json")[1])["order"] == [
        "users",
        "policies",
    ]
    assert _run(capsys, "graph", *registry, "--mermaid")[1].startswith("flowchart LR\n")
    users = registry_dir / "users.yaml"
    users.write_text(
        users.read_text()
        + "  - name: p\n    type: uuid\n"
        + "references:\n  - column: p\n    references: policies.policies.id\n"
    )
    code, out, _ = _run(capsys, "graph", *registry)
    assert code == 1
    assert "cycle: policies -> users -> policies" in out


def test_docs_erd_and_diff(
    registry_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registry = ["--registry", str(registry_dir)]
    assert _run(capsys, "docs", *registry, "--out", str(tmp_path / "docs"))[0] == 0
    assert (tmp_path / "docs" / "users.md").is_file()
    assert json.loads(
        _run(capsys, "docs", *registry, "--out", str(tmp_path / "d2"), "--format", "json")[1]
    )[0].endswith("index.md")
    assert _run(capsys, "erd", *registry, "--service", "users")[1].startswith(
        "erDiagram\n    users__users"
    )
    assert json.loads(_run(capsys, "erd", *registry, "--format", "json")[1])["mermaid"].startswith(
        "erDiagram"
    )
    loaded = SchemaRegistry.load(registry_dir)
    users = loaded.get("users", "users")
    loaded.register(users.model_copy(update={"version": "1.0.1", "description": "x"}))
    loaded.save()
    assert _run(capsys, "diff", *registry, "users.users", "1.0.0", "1.0.1")[1] == "no changes\n"
    assert (
        json.loads(
            _run(capsys, "diff", *registry, "users.users", "1.0.1", "1.0.0", "--format", "json")[1]
        )
        == []
    )
    code, _, err = _run(capsys, "diff", *registry, "users.users", "1.0.0", "7.0.0")
    assert (code, "NOT_FOUND" in err) == (1, True)


def test_migrate_plan_history_impact_and_rollback_end_to_end(
    registry_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    deployed = tmp_path / "deployed"
    deployed.mkdir()
    (deployed / "registry.yaml").write_text("# deployed state\nservices: {}\n")
    urls = [
        "--url",
        f"users=sqlite:///{tmp_path / 'users.db'}",
        "--url",
        f"policies=sqlite:///{tmp_path / 'policies.db'}",
    ]
    common = [
        "--registry",
        str(deployed),
        *urls,
        "--history",
        f"sqlite:///{tmp_path / 'history.db'}",
    ]
    code, out, _ = _run(capsys, "migrate", *common, "--to", str(registry_dir), "--dry-run")
    assert (code, "CREATE TABLE users" in out) == (0, True)
    assert json.loads(
        _run(
            capsys, "migrate", *common, "--to", str(registry_dir), "--dry-run", "--format", "json"
        )[1]
    )["sql"]
    code, out, err = _run(capsys, "migrate", *common, "--to", str(registry_dir))
    assert (code, err) == (0, "")  # no progress lines: standard error is not a terminal
    assert SchemaRegistry.load(deployed).get("policies", "policies").version == "1.0.0"
    # Next version: drop a column (blocked until allowed) and add one.
    target = tmp_path / "next"
    shutil.copytree(deployed, target)
    _edit(
        target / "policies.yaml",
        "  - name: created_at\n",
        "  - name: channel\n    type: string(20)\n  - name: created_at_gone\n",
    )
    _edit(target / "policies.yaml", "    default: CURRENT_TIMESTAMP\nreferences", "references")
    _edit(
        target / "policies.yaml",
        "  - name: created_at_gone\n    type: timestamp(tz)\n    nullable: false\n",
        "",
    )
    _edit(target / "policies.yaml", "version: 1.0.0", "version: 2.0.0")
    code, out, _ = _run(capsys, "plan", *common, "--to", str(target))
    assert code == 0  # the table is empty, so the drop is only a warning
    assert "DS103 drop-column** (warning)" in out
    plan = json.loads(_run(capsys, "plan", *common, "--to", str(target), "--format", "json")[1])
    assert plan["affected_services"] == {}
    assert [op for step in plan["steps"] for op in step["operations"]] == [
        "drop column policies.created_at",
        "add column policies.channel string(20) NULL",
    ]
    code, out, err = _run(
        capsys, "migrate", *common, "--to", str(target), "--break-lock", "--format", "json"
    )
    assert code == 0, err
    run_id = json.loads(out)["id"]
    assert SchemaRegistry.load(deployed).get("policies", "policies").column("channel") is not None
    code, out, _ = _run(capsys, "history", *common, "--service", "policies")
    assert code == 0
    assert len(out.splitlines()) == 2
    assert run_id in out.splitlines()[0]
    rows = json.loads(
        _run(capsys, "history", *common, "--status", "COMPLETED", "--format", "json")[1]
    )
    assert [row["status"] for row in rows] == ["COMPLETED", "COMPLETED"]
    code, out, _ = _run(capsys, "impact", *common, "--run", run_id)
    assert (code, f"({MigrationStatus.COMPLETED})" in out) == (0, True)
    assert (
        json.loads(_run(capsys, "impact", *common, "--to", str(target), "--format", "json")[1])[
            "steps"
        ]
        == []
    )
    code, out, err = _run(capsys, "rollback", *common, run_id)
    assert code == 0, err
    assert SchemaRegistry.load(deployed).get("policies", "policies").version == "1.0.0"
    code, _, err = _run(capsys, "rollback", *common, run_id, "--format", "json")
    assert code == 1
    assert "only a completed migration" in err


def test_bootstrap_creates_every_table_once(
    registry_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = [
        "--registry",
        str(registry_dir),
        "--url",
        f"users=sqlite:///{tmp_path / 'users.db'}",
        "--url",
        f"policies=sqlite:///{tmp_path / 'policies.db'}",
        "--history",
        f"sqlite:///{tmp_path / 'history.db'}",
    ]
    code, out, _ = _run(capsys, "bootstrap", *common, "--dry-run")
    assert (code, out.startswith("-- users.users@1.0.0\n"), "CREATE TABLE policies" in out) == (
        0,
        True,
        True,
    )
    assert json.loads(_run(capsys, "bootstrap", *common, "--dry-run", "--format", "json")[1])["sql"]
    assert not (tmp_path / "users.db").exists()
    code, out, err = _run(capsys, "bootstrap", *common, "--format", "json")
    assert (code, json.loads(out)["status"], err) == (0, "COMPLETED", "")
    code, out, err = _run(capsys, "bootstrap", *common)  # the tables exist now
    assert code == 1
    assert "SCHEMA_MIGRATION_FAILED" in err
    code, out, _ = _run(capsys, "history", *common, "--status", "COMPLETED", "--format", "json")
    assert [run["services"] for run in json.loads(out)] == [["policies", "users"]]


def test_a_failed_migration_exits_1_and_a_blocked_one_too(
    registry_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    deployed = tmp_path / "deployed"
    deployed.mkdir()
    (deployed / "registry.yaml").write_text("services: {}\n")
    common = [
        "--registry",
        str(deployed),
        "--url",
        f"users=sqlite:///{tmp_path / 'u.db'}",
        "--history",
        f"sqlite:///{tmp_path / 'h.db'}",
    ]
    (registry_dir / "registry.yaml").write_text("services:\n  users:\n    files: [users.yaml]\n")
    assert _run(capsys, "migrate", *common, "--to", str(registry_dir))[0] == 0
    target = tmp_path / "next"
    shutil.copytree(deployed, target)
    _edit(target / "users.yaml", "version: 1.0.0", "version: 2.0.0")
    _edit(target / "users.yaml", "  - name: deleted_at\n", "  - name: gone_at\n")
    code, out, _ = _run(capsys, "plan", *common, "--to", str(target))
    assert code == 0  # empty table: drop and add are warnings
    assert "BC103" in out
    code, _, err = _run(capsys, "migrate", *common, "--to", str(target), "--allow", "DS103")
    assert code == 0, err
    broken = tmp_path / "broken"
    shutil.copytree(deployed, broken)
    _edit(broken / "users.yaml", "version: 2.0.0", "version: 3.0.0")
    _edit(broken / "users.yaml", "  - name: gone_at\n", "  - name: id\n")
    code, out, err = _run(capsys, "migrate", *common, "--to", str(broken))
    assert code == 1


def test_usage_errors_exit_2(registry_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["nonsense"])
    assert caught.value.code == 2
    code, _, err = _run(
        capsys, "plan", "--registry", str(registry_dir), "--to", str(registry_dir), "--url", "users"
    )
    assert (code, "must be SERVICE=URL" in err) == (2, True)

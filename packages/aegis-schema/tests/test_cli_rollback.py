"""``aegis-schema rollback`` leaves ``--registry`` as the databases are, on PostgreSQL."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa

from aegis.schema import MigrationStatus, SchemaRegistry
from aegis.schema._cli import main
from aegis.schema._engines import create_engine


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _sql(url: str, statement: str, **values: object) -> list[sa.Row[tuple[object, ...]]]:
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            result = connection.execute(sa.text(statement), values)
            return list(result) if result.returns_rows else []
    finally:
        engine.dispose()


def _tables(urls: dict[str, str]) -> dict[str, list[str]]:
    found = {}
    for service, url in urls.items():
        engine = create_engine(url)
        try:
            found[service] = sorted(sa.inspect(engine).get_table_names())
        finally:
            engine.dispose()
    return found


def _recorded(registry: Path) -> list[str]:
    return [f"{s.key}@{s.version}" for s in SchemaRegistry.load(registry).schemas()]


def _options(tmp_path: Path, service_urls: dict[str, str]) -> list[str]:
    deployed = tmp_path / "deployed"
    deployed.mkdir()
    (deployed / "registry.yaml").write_text("services: {}\n")
    options = ["--registry", str(deployed), "--history", f"sqlite:///{tmp_path / 'history.db'}"]
    for service, url in service_urls.items():
        options += ["--url", f"{service}={url}"]
    return options


CREATED = {"users": ["users"], "policies": ["policies"]}
NONE: dict[str, list[str]] = {"users": [], "policies": []}
BOTH = ["policies.policies@1.0.0", "users.users@1.0.0"]


@pytest.mark.parametrize("service_urls", ["postgresql"], indirect=True)
def test_rolled_back_creates_are_forgotten_and_tables_with_rows_need_allow_ds102(
    registry_dir: Path,
    tmp_path: Path,
    service_urls: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    common = _options(tmp_path, service_urls)
    deployed = Path(common[1])
    code, out, err = _run(capsys, "migrate", *common, "--to", str(registry_dir), "--format", "json")
    assert (code, err) == (0, "")
    first = json.loads(out)["id"]
    assert (_tables(service_urls), _recorded(deployed)) == (CREATED, BOTH)

    # Empty tables: nothing is lost, the rollback drops them and --registry forgets them.
    code, out, err = _run(capsys, "rollback", *common, first)
    assert (code, err) == (0, "")
    assert (_tables(service_urls), _recorded(deployed)) == (NONE, [])

    # So the next migrate to the same versions creates both tables again, and they work.
    code, out, err = _run(capsys, "migrate", *common, "--to", str(registry_dir), "--format", "json")
    assert (code, err) == (0, "")
    second = json.loads(out)
    assert [line.split(":")[0] for line in second["log"]] == [
        "users.users@1.0.0",
        "policies.policies@1.0.0",
    ]
    assert (_tables(service_urls), _recorded(deployed)) == (CREATED, BOTH)
    for email in ("ada@example.com", "bob@example.com"):
        _sql(
            service_urls["users"],
            "INSERT INTO users (id, email, name, password_hash) "
            "VALUES (gen_random_uuid(), :email, 'x', 'h')",
            email=email,
        )
    (holder,) = _sql(service_urls["users"], "SELECT id FROM users WHERE email = 'ada@example.com'")
    _sql(
        service_urls["policies"],
        "INSERT INTO policies (id, number, holder_id, premium, starts_on) "
        "VALUES (gen_random_uuid(), 'P-1', :holder, 12.50, DATE '2026-01-01')",
        holder=holder[0],
    )

    # Now the rollback would drop rows: refused, saying which, and nothing changes.
    code, out, err = _run(capsys, "rollback", *common, second["id"])
    assert (code, out) == (1, "")
    assert err.splitlines() == [
        "aegis-schema: SCHEMA_MIGRATION_BLOCKED: migration blocked by 2 finding(s) (DS102); "
        "fix them or allow their rules explicitly",
        "  DS102 drop-table: drop table policies.policies: the table has 1 rows",
        "  DS102 drop-table: drop table users.users: the table has 2 rows",
    ]
    assert (_tables(service_urls), _recorded(deployed)) == (CREATED, BOTH)
    assert _sql(service_urls["users"], "SELECT count(*) FROM users") == [(2,)]
    code, out, _ = _run(capsys, "history", *common, "--format", "json")
    latest = json.loads(out)[0]
    assert (latest["id"], latest["status"]) == (second["id"], str(MigrationStatus.COMPLETED))

    # Allowed, the rows go with the tables, and --registry follows.
    code, out, err = _run(capsys, "rollback", *common, second["id"], "--allow", "DS102")
    assert (code, err) == (0, "")
    assert (_tables(service_urls), _recorded(deployed)) == (NONE, [])


@pytest.mark.parametrize("service_urls", ["postgresql"], indirect=True)
def test_a_rolled_back_drop_puts_the_table_back_in_the_registry(
    registry_dir: Path,
    tmp_path: Path,
    service_urls: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    common = _options(tmp_path, service_urls)
    deployed = Path(common[1])
    assert _run(capsys, "migrate", *common, "--to", str(registry_dir))[0] == 0
    target = tmp_path / "next"
    shutil.copytree(deployed, target)
    (target / "registry.yaml").write_text("services:\n  users:\n    files: [users.yaml]\n")
    code, out, err = _run(
        capsys, "migrate", *common, "--to", str(target), "--allow", "DS101", "--format", "json"
    )
    assert (code, err) == (0, "")
    assert (_tables(service_urls)["policies"], _recorded(deployed)) == ([], BOTH[1:])

    code, _, err = _run(capsys, "rollback", *common, json.loads(out)["id"])
    assert (code, err) == (0, "")
    assert (_tables(service_urls), _recorded(deployed)) == (CREATED, BOTH)
    code, out, _ = _run(capsys, "plan", *common, "--to", str(registry_dir), "--format", "json")
    assert (code, json.loads(out)["steps"]) == (0, [])

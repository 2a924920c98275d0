"""Fixtures for aegis-schema's tests: example registries, service databases, Mermaid's parser."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

import pytest

from aegis.schema import SchemaColumn, SchemaDefinition, SchemaRegistry
from aegis.testing import create_database, drop_database, unique_name

REGISTRY = Path(__file__).resolve().parent / "registry"
"""The tests' registry: users.users, and policies.policies referring to it. Its own copy, so
the example services' registry (examples/schemas) can grow without moving the lines and rules
these tests expect."""
EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "schemas"
MERMAID = Path(__file__).resolve().parent / "mermaid"


@pytest.fixture
def registry_dir(tmp_path: Path) -> Path:
    """A private copy of the tests' registry that a test may change."""
    target = tmp_path / "schemas"
    shutil.copytree(REGISTRY, target)
    return target


@pytest.fixture
def examples_dir(tmp_path: Path) -> Path:
    """A private copy of examples/schemas, the registry the README shows."""
    target = tmp_path / "examples"
    shutil.copytree(EXAMPLES, target)
    return target


@pytest.fixture
def registry(registry_dir: Path) -> SchemaRegistry:
    """The tests' registry: users.users and policies.policies (which references users)."""
    return SchemaRegistry.load(registry_dir)


class TableFactory(Protocol):
    def __call__(
        self,
        key: str,
        version: str = "1.0.0",
        *columns: SchemaColumn,
        references: list[dict[str, str]] | None = None,
    ) -> SchemaDefinition: ...


@pytest.fixture
def make_table() -> TableFactory:
    """Build ``service.table`` with an ``id`` uuid primary key plus ``columns``."""

    def make(
        key: str,
        version: str = "1.0.0",
        *columns: SchemaColumn,
        references: list[dict[str, str]] | None = None,
    ) -> SchemaDefinition:
        service, name = key.split(".")
        return SchemaDefinition.model_validate(
            {
                "service": service,
                "table": name,
                "version": version,
                "columns": [SchemaColumn(name="id", type="uuid", primary_key=True), *columns],
                "references": references or [],
            }
        )

    return make


@pytest.fixture(params=["postgresql", "sqlite"])
def service_urls(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    """One database per example service: two fresh PostgreSQL databases, or two SQLite files."""
    if request.param == "sqlite":
        yield {name: f"sqlite:///{tmp_path / f'{name}.db'}" for name in ("users", "policies")}
        return
    server: str = request.getfixturevalue("postgres_url")
    names = {service: unique_name(f"schema_{service}") for service in ("users", "policies")}
    urls = {service: create_database(server, name) for service, name in names.items()}
    yield urls
    for name in names.values():
        drop_database(server, name)


@pytest.fixture(scope="session")
def mermaid_parse() -> Callable[[list[str]], list[dict[str, object]]]:
    """Parse diagrams with Mermaid's own parser under node (installed with npm on first use)."""
    if not (MERMAID / "node_modules" / "mermaid").is_dir():
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"], cwd=MERMAID, check=True, capture_output=True
        )

    def parse(diagrams: list[str]) -> list[dict[str, object]]:
        completed = subprocess.run(
            ["node", str(MERMAID / "parse.mjs")],
            input=json.dumps(diagrams),
            capture_output=True,
            text=True,
            check=True,
        )
        results: list[dict[str, object]] = json.loads(completed.stdout)
        return results

    return parse

"""The files ``aegis-service new NAME`` writes: a runnable service that passes its own tests.

``string.Template`` placeholders: ``${name}`` (the distribution and registry service name),
``${package}`` (the import name), ``${prefix}`` (the environment variable prefix), ``${title}``.
"""

from __future__ import annotations

from typing import Final

PYPROJECT: Final = """\
[build-system]
requires = ["hatchling>=1.27"]
build-backend = "hatchling.build"

[project]
name = "${name}"
version = "0.1.0"
description = "${title}: a service built on aegis"
readme = "README.md"
requires-python = ">=3.11"
dependencies = [
  "aegis-service[auth,cache,db,fastapi]>=0.1,<0.2",
  "aegis-db[sqlite,postgres]>=0.1,<0.2",
  "aegis-schema>=0.1,<0.2",
  "uvicorn>=0.35",
]

[project.optional-dependencies]
test = ["aegis-testing[asgi]>=0.1,<0.2", "pytest>=8"]

[project.scripts]
${name} = "${package}.__main__:main"

[tool.hatch.build.targets.wheel]
packages = ["src/${package}"]

[tool.pytest.ini_options]
# `pytest` in this folder works without installing the project: src/ is put on sys.path.
pythonpath = ["src"]
testpaths = ["tests"]
addopts = ["--import-mode=importlib", "--strict-markers", "-p", "no:cacheprovider"]
"""

README: Final = """\
# ${name}

${title}, built on [aegis-service](https://pypi.org/project/aegis-service/): one call
(`bootstrap()` in `src/${package}/app.py`) gives it logging with request ids, metrics,
traces, problem+json errors, bearer-token authentication, `/health` and `/metrics`.

    pip install -e ".[test]"
    pytest          # also works without the install
    aegis-schema bootstrap --registry schemas --url ${package}=sqlite:///${package}.db \\
        --history sqlite:///schema-history.db   # create the tables
    ${name}         # serves on 127.0.0.1:8000 (python -m ${package})

Settings come from `${prefix}_*` environment variables and `.env`
(`${prefix}_DATABASE__URL`, `${prefix}_CACHE__URL`, `${prefix}_AUTH__SIGNING_KEY`, ...).
The tables are declared in `schemas/` (an aegis-schema registry) and mirrored by the
SQLAlchemy models in `src/${package}/models.py`.
"""

GITIGNORE: Final = """\
__pycache__/
*.db
.env
"""

REGISTRY: Final = """\
# Schema registry of ${name}: every table, in one file each (aegis-schema).
compatibility: BACKWARD
services:
  ${package}:
    owner: ${name}-team
    description: ${title}.
    files:
      - items.yaml
"""

ITEMS_SCHEMA: Final = """\
# The items table (${package}.models.Item).
service: ${package}
table: items
version: 1.0.0
owner: ${name}-team
description: Items owned by the users who created them.
columns:
  - name: id
    type: uuid
    primary_key: true
    description: UUIDv7, so ids sort by creation time.
  - name: name
    type: string(200)
    nullable: false
  - name: owner
    type: string(200)
    nullable: false
    index: true
    description: The subject of the token that created the item.
  - name: created_at
    type: timestamp(tz)
    nullable: false
    default: CURRENT_TIMESTAMP
  - name: updated_at
    type: timestamp(tz)
    nullable: false
    default: CURRENT_TIMESTAMP
"""

INIT: Final = '''\
"""${title}."""
'''

SETTINGS: Final = '''\
"""The settings of ${name}: ``${prefix}_*`` variables, ``.env``, then these defaults."""

from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from aegis.cache import CacheSettings
from aegis.db import DatabaseSettings
from aegis.service import AuthSettings, ServiceSettings


class Settings(ServiceSettings):
    """Every default runs on one machine: SQLite, an in-process cache, a generated key."""

    model_config = SettingsConfigDict(
        env_prefix="${prefix}_", env_nested_delimiter="__", env_file=".env", extra="ignore"
    )

    name: str = "${name}"
    host: str = "127.0.0.1"
    port: int = 8000
    database: DatabaseSettings | None = DatabaseSettings(url=SecretStr("sqlite:///${package}.db"))
    cache: CacheSettings | None = CacheSettings(namespace="${name}")
    auth: AuthSettings | None = AuthSettings(issuer="${name}", audience="${name}")
    item_cache_seconds: float = 60.0
'''

MODELS: Final = '''\
"""The tables of ${name} (schemas/ declares them) and what the API reads and writes."""

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from aegis.core.models import SafeStr
from aegis.db import BaseRepository, TimestampMixin, UUIDPrimaryKeyMixin


class Base(DeclarativeBase):
    """Declarative base of the service's tables."""


class Item(UUIDPrimaryKeyMixin, TimestampMixin, Base):
    """An item: the table of schemas/items.yaml."""

    __tablename__ = "items"
    name: Mapped[str] = mapped_column(String(200))
    owner: Mapped[str] = mapped_column(String(200), index=True)


class ItemRepository(BaseRepository[Item]):
    """Items, with what clients may filter and sort by."""

    filterable = frozenset({"name", "owner"})
    sortable = frozenset({"name", "created_at"})


class ItemIn(BaseModel):
    """``POST /items``."""

    name: SafeStr = Field(min_length=1, max_length=200)


class ItemOut(BaseModel):
    """An item as the API shows it."""

    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    name: str
    owner: str
    created_at: datetime
'''

APP: Final = '''\
"""The ${name} application: ``create_app(settings)``."""

import uuid
from typing import Annotated

from fastapi import Depends, FastAPI, Response, status
from sqlalchemy.ext.asyncio import AsyncSession

from aegis.auth import CurrentUser
from aegis.core.errors import NotFoundError
from aegis.db import session_dependency
from aegis.service import bootstrap
from ${package}.models import ItemIn, ItemOut, ItemRepository
from ${package}.settings import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the application; ``app.state.service`` holds what aegis built for it."""
    settings = settings or Settings.load()
    app = FastAPI(title="${title}")
    service = bootstrap(app, settings)
    db, cache = service.db, service.cache
    assert db is not None  # Settings has a database by default
    assert cache is not None  # and a cache
    session_type = Annotated[AsyncSession, Depends(session_dependency(db), scope="function")]

    @app.post("/items", status_code=status.HTTP_201_CREATED)
    async def create_item(body: ItemIn, user: CurrentUser, session: session_type) -> ItemOut:
        item = await ItemRepository(session).create({"name": body.name, "owner": user.subject})
        return ItemOut.model_validate(item)

    @app.get("/items/{item_id}")
    async def get_item(
        item_id: uuid.UUID, user: CurrentUser, session: session_type, response: Response
    ) -> ItemOut:
        key = f"item:{item_id}"
        cached = await cache.get(key, type=ItemOut)
        response.headers["X-Cache"] = "hit" if cached is not None else "miss"
        item = cached or ItemOut.model_validate(await ItemRepository(session).get(item_id))
        if item.owner != user.subject:
            raise NotFoundError(f"item {item_id} not found")  # never say it exists
        if cached is None:
            await cache.set(key, item, ttl=settings.item_cache_seconds)
        return item

    return app
'''

MAIN: Final = '''\
"""``${name}`` (or ``python -m ${package}``): serve the application with uvicorn."""

import uvicorn

from ${package}.app import create_app
from ${package}.settings import Settings


def main() -> None:
    """Load the settings and serve."""
    settings = Settings.load()
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port)


if __name__ == "__main__":
    main()
'''

CONFTEST: Final = '''\
"""Fixtures: the tables made from schemas/ by aegis-schema, settings on a real Redis."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from aegis.cache import CacheSettings
from aegis.db import DatabaseSettings
from aegis.log import LogSettings, configured_logging
from aegis.schema import MigrationCoordinator, SchemaRegistry
from aegis.testing import LogLines
from ${package}.settings import Settings

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"


@pytest.fixture
def lines() -> Iterator[LogLines]:
    """The access lines of the test; logging is put back as it was afterwards."""
    captured = LogLines("aegis.access")
    with configured_logging(LogSettings(console=None), outputs=[captured]):
        yield captured


@pytest.fixture
def settings(tmp_path: Path, redis_url: str, redis_prefix: str) -> Settings:
    """A database of the test's own, its tables made as a deployment makes them."""
    database = f"sqlite:///{tmp_path / 'service.db'}"
    history = f"sqlite:///{tmp_path / 'schema-history.db'}"
    registry = SchemaRegistry.load(SCHEMAS)
    with MigrationCoordinator(registry, {"${package}": database}, history=history) as schemas:
        schemas.bootstrap()
    return Settings(
        database=DatabaseSettings(url=SecretStr(database)),
        # aegis-testing's Redis (AEGIS_TEST_REDIS_URL, else an embedded one), keys of its own
        cache=CacheSettings(url=SecretStr(redis_url), namespace=redis_prefix.rstrip(":")),
        log=None,  # the tests configure logging (the lines fixture)
    )
'''

TEST_APP: Final = '''\
"""${name} under a real uvicorn: items are created and read by their owner only."""

from typing import Any

from aegis.service import Service
from aegis.testing import LogLines, uvicorn_server
from ${package}.app import create_app
from ${package}.settings import Settings


JSON = ("Content-Type", "application/json")


def bearer(service: Service, subject: str) -> list[tuple[str, str]]:
    """Headers of a JSON request by ``subject``, with a token of this service's."""
    assert service.tokens is not None
    return [("Authorization", f"Bearer {service.tokens.issue_access_token(subject)}"), JSON]


def test_an_item_is_created_and_read_by_its_owner_then_from_the_cache(
    settings: Settings, lines: LogLines
) -> None:
    app = create_app(settings)
    service = app.state.service
    with uvicorn_server(app) as server, server.connect() as connection:
        kim = bearer(service, "kim")
        body = b\'{"name": "first"}\'
        created = connection.request("POST", "/items", headers=kim, body=body)
        assert created.status == 201, created.body
        item: dict[str, Any] = created.json()
        path = f"/items/{item['id']}"
        first = connection.request("GET", path, headers=[*kim, ("X-Request-ID", "read-1")])
        second = connection.request("GET", path, headers=kim)
        other = connection.request("GET", path, headers=bearer(service, "lee"))
    assert (item["name"], item["owner"]) == ("first", "kim")
    assert first.json() == second.json() == item
    assert (first.header("x-cache"), second.header("x-cache")) == ("miss", "hit")
    assert other.status == 404
    (line,) = lines.wait_for("request_id", ["read-1"])
    assert (line["route"], line["user_id"], line["status"]) == ("/items/{item_id}", "kim", 200)


def test_without_a_token_the_answer_is_a_401_problem(settings: Settings) -> None:
    with uvicorn_server(create_app(settings)) as server, server.connect() as connection:
        refused = connection.request("POST", "/items", headers=[JSON], body=b\'{"name": "x"}\')
    assert refused.status == 401
    assert refused.header("content-type") == "application/problem+json"
    assert refused.header("x-request-id")


def test_an_invalid_item_is_a_422_naming_the_field(settings: Settings) -> None:
    app = create_app(settings)
    with uvicorn_server(app) as server, server.connect() as connection:
        kim = bearer(app.state.service, "kim")
        invalid = connection.request("POST", "/items", headers=kim, body=b\'{"name": ""}\')
    assert invalid.status == 422
    assert [error["field"] for error in invalid.json()["errors"]] == ["name"]


def test_ready_checks_the_database_and_the_cache(settings: Settings) -> None:
    with uvicorn_server(create_app(settings)) as server, server.connect() as connection:
        ready = connection.request("GET", "/health/ready")
    assert ready.status == 200
    assert {name.partition(":")[0] for name in ready.json()["checks"]} == {"cache", "database"}
'''

FILES: Final = {
    "pyproject.toml": PYPROJECT,
    "README.md": README,
    ".gitignore": GITIGNORE,
    "schemas/registry.yaml": REGISTRY,
    "schemas/items.yaml": ITEMS_SCHEMA,
    "src/${package}/__init__.py": INIT,
    "src/${package}/__main__.py": MAIN,
    "src/${package}/settings.py": SETTINGS,
    "src/${package}/models.py": MODELS,
    "src/${package}/app.py": APP,
    "src/${package}/py.typed": "",
    "tests/conftest.py": CONFTEST,
    "tests/test_app.py": TEST_APP,
}
"""Every file of a new service: path (with placeholders) -> text."""

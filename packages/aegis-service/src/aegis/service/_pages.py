"""The /asyncapi and /schema pages: their routes, public paths and OpenAPI entries.

``/asyncapi`` needs aegis-msg and an event transport (``Service.asyncapi`` exists); ``/schema``
needs aegis-schema and ``PagesSettings.schema_registry``. Each page loads its scripts from
``<path>/assets/``, which stay public even when the pages are not: they are files of the
packages, with no data of the service.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from starlette.routing import BaseRoute, Mount, Route

from aegis.core.errors import ConfigurationError

if TYPE_CHECKING:
    from pathlib import Path

    from aegis.service._service import Service
    from aegis.service._settings import PagesSettings

_TAG: Final = "documentation"


@dataclass(frozen=True)
class _Page:
    path: str
    summary: str
    documents: tuple[tuple[str, str], ...] = ()  # (path suffix, media type) of raw documents


def _pages(service: Service) -> list[_Page]:
    pages = service.settings.pages
    if pages is None:
        return []
    found = []
    if service.asyncapi is not None:
        found.append(
            _Page(
                pages.asyncapi_path,
                "The event catalogue: this service's AsyncAPI document, rendered",
                ((".json", "application/json"), (".yaml", "application/yaml")),
            )
        )
    if pages.schema_registry is not None:
        found.append(
            _Page(
                pages.schema_path,
                "The tables this service owns, the references to and from other services, "
                "and the migrations its database lacks",
            )
        )
    return found


def page_routes(service: Service) -> list[BaseRoute]:
    """The routes of the pages ``service``'s settings and members call for.

    Raises:
        ConfigurationError: a schema registry is named but aegis-schema is not installed.
        SchemaValidationError: the registry cannot be loaded.
    """
    pages = service.settings.pages
    routes: list[BaseRoute] = []
    if pages is None:
        return routes
    asyncapi = service.asyncapi
    if asyncapi is not None:
        path = pages.asyncapi_path
        routes += [
            Route(f"{path}.json", asyncapi.app()),
            Route(f"{path}.yaml", asyncapi.app("yaml")),
            Route(path, asyncapi.app("html")),
            Mount(f"{path}/assets", asyncapi.assets_app()),
        ]
    if pages.schema_registry is not None:
        routes += _schema_routes(service, pages, pages.schema_registry)
    return routes


def _schema_routes(service: Service, pages: PagesSettings, directory: Path) -> list[BaseRoute]:
    try:
        from aegis.schema import SchemaRegistry, schema_page, schema_page_assets  # the extra
    except ImportError as exc:
        raise ConfigurationError(
            "PagesSettings.schema_registry needs aegis-schema: pip install 'aegis-service[schema]'"
        ) from exc
    registry = SchemaRegistry.load(directory)
    history = pages.schema_history_url
    page = schema_page(
        registry,
        pages.schema_service or service.settings.name,
        history=history.get_secret_value() if history is not None else None,
    )
    return [
        Route(pages.schema_path, page),
        Mount(f"{pages.schema_path}/assets", schema_page_assets()),
    ]


def public_page_paths(pages: PagesSettings | None) -> list[str]:
    """The page paths that need no token: all of them when public, else their assets only."""
    if pages is None:
        return []
    paths = [pages.asyncapi_path, pages.schema_path]
    if pages.public:
        return [f"{path}*" for path in paths]
    return [f"{path}/assets/*" for path in paths]


def document_pages(schema: dict[str, Any], service: Service) -> None:
    """Add the pages (and the raw AsyncAPI documents) to an OpenAPI document's ``paths``."""
    paths = schema.setdefault("paths", {})
    for page in _pages(service):
        paths[page.path] = {"get": _operation(page.summary, "text/html", page.path)}
        for suffix, media_type in page.documents:
            summary = f"This service's AsyncAPI 3.0 document ({media_type})"
            paths[page.path + suffix] = {"get": _operation(summary, media_type, page.path + suffix)}


def _operation(summary: str, media_type: str, path: str) -> dict[str, Any]:
    name = path.strip("/").replace("/", "_").replace(".", "_")
    return {
        "tags": [_TAG],
        "summary": summary,
        "operationId": f"aegis_page_{name}",
        "responses": {"200": {"description": summary, "content": {media_type: {}}}},
    }

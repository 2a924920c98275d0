"""A service's schema page over HTTP (``/schema``), and the files it loads, as ASGI apps."""

from __future__ import annotations

import asyncio
import logging

from aegis.core.errors import ConfigurationError
from aegis.core.html import HtmlPage, PackageFiles, PageContext
from aegis.schema._history import HistoryStore
from aegis.schema._html import Links, asset_files, render_service_html
from aegis.schema._impact import ImpactReport
from aegis.schema._pending import pending_migration
from aegis.schema._registry import SchemaRegistry

logger = logging.getLogger("aegis.schema")


def schema_page(
    registry: SchemaRegistry, service: str, *, history: HistoryStore | str | None = None
) -> HtmlPage:
    """Return an ASGI app serving ``service``'s page of ``registry`` (GET and HEAD).

    The page shows the service's tables, the references to and from other services and an
    ER diagram drawn in the browser by the Mermaid vendored in aegis-schema. With the
    migration coordinator's ``history`` (a :class:`HistoryStore` or its URL), it also shows
    the migrations the databases still lack and their impact report, read at each request;
    when the history cannot be read the page says so and the error is logged. Scripts must
    carry the response's nonce (Content-Security-Policy); they and the stylesheet load from
    ``<page path>/assets/``, served by :func:`schema_page_assets`.

    Raises:
        ConfigurationError: ``service`` is not a service of the registry.

    Example:
        >>> registry = SchemaRegistry.load("schemas")
        >>> app.add_route("/schema", schema_page(registry, "users", history=history_url))
        >>> app.mount("/schema/assets", schema_page_assets())
    """
    if service not in registry.services():
        raise ConfigurationError(
            f"no service {service!r} in the schema registry (services: "
            f"{', '.join(registry.services()) or 'none'})",
            details={"service": service},
        )
    store = HistoryStore(history) if isinstance(history, str) else history

    async def render(context: PageContext) -> str:
        report: ImpactReport | None = None
        note = None
        if store is None:
            note = (
                "Not known here: the service was not given the migration coordinator's "
                "history, so it cannot tell which versions its database holds."
            )
        else:
            try:
                report = await asyncio.to_thread(pending_migration, registry, store)
            # Any failure of the history database (down, unreadable) leaves the page useful.
            except Exception as exc:
                logger.warning("schema page: the migration history cannot be read: %s", exc)
                note = f"The migration history cannot be read: {type(exc).__name__}."
        links = Links(assets=context.assets, nonce=context.nonce)
        return render_service_html(registry, service, links, pending=report, pending_note=note)

    return HtmlPage(render)


def schema_page_assets() -> PackageFiles:
    """Return an ASGI app serving the schema page's files (mount it at ``<page path>/assets``)."""
    return PackageFiles(asset_files())

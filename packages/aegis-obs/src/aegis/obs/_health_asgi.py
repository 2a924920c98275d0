"""The ``/health``, ``/health/live`` and ``/health/ready`` routes for Starlette and FastAPI."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from aegis.obs._health import HEALTH_JSON, HealthRegistry

_NO_STORE = {"cache-control": "no-store"}


def health_routes(
    registry: HealthRegistry,
    *,
    path: str = "/health",
    service_id: str | None = None,
    version: str | None = None,
) -> list[Route]:
    """Return the three health routes, to add to a Starlette or FastAPI app.

    - ``{path}``: every check, in full detail (``application/health+json``); 503 when DOWN,
      200 when UP or DEGRADED.
    - ``{path}/live``: the process answers; runs no check (a Kubernetes liveness probe must
      not restart a pod because its database is down).
    - ``{path}/ready``: the critical checks only; 503 when one fails (readiness probe).

    Args:
        registry: The checks.
        path: The base path.
        service_id: The document's ``serviceId``.
        version: The document's ``version``.

    Example:
        >>> app = Starlette(routes=[*health_routes(health), metrics_route()])
    """

    async def respond(critical_only: bool) -> Response:
        report = await registry.run(critical_only=critical_only)
        return JSONResponse(
            report.to_health_json(service_id=service_id, version=version),
            status_code=report.http_status,
            media_type=HEALTH_JSON,
            headers=_NO_STORE,
        )

    async def health(_: Request) -> Response:
        return await respond(critical_only=False)

    async def ready(_: Request) -> Response:
        return await respond(critical_only=True)

    async def live(_: Request) -> Response:
        return JSONResponse({"status": "pass"}, media_type=HEALTH_JSON, headers=_NO_STORE)

    return [
        Route(path, health, methods=["GET"], include_in_schema=False),
        Route(f"{path}/live", live, methods=["GET"], include_in_schema=False),
        Route(f"{path}/ready", ready, methods=["GET"], include_in_schema=False),
    ]


__all__ = ["health_routes"]

"""With ``sentry_dsn``, an unhandled error reaches Sentry once, with its request id, masked."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sentry_sdk
from prometheus_client import CollectorRegistry
from pydantic import SecretStr
from sentry_sdk.envelope import Envelope
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from aegis.log import LogSettings, configured_logging, shutdown_logging
from aegis.service import ServiceSettings, bootstrap
from aegis.testing import HttpRecorder, uvicorn_server


@pytest.fixture
def sentry_endpoint() -> Iterator[tuple[str, HttpRecorder]]:
    """A local HTTP server standing in for Sentry: its DSN, and the server (``.bodies``)."""
    with HttpRecorder() as sentry:
        yield f"http://public-key@{sentry.address}/42", sentry


async def charge(request: Request) -> Response:
    raise RuntimeError("card declined, password=hunter2")


def test_an_unhandled_error_becomes_one_masked_sentry_event_with_the_request_id(
    sentry_endpoint: tuple[str, HttpRecorder],
) -> None:
    dsn, sentry = sentry_endpoint
    app = Starlette(routes=[Route("/charge", charge, methods=["POST"])])
    settings = ServiceSettings(
        name="payments", version="1.2.3", log=LogSettings(console=None), sentry_dsn=SecretStr(dsn)
    )
    with configured_logging(LogSettings(console=None)):
        try:
            bootstrap(app, settings, registry=CollectorRegistry())
            with uvicorn_server(app) as server, server.connect() as connection:
                answer = connection.request("POST", "/charge", headers={"X-Request-ID": "pay-1"})
            sentry_sdk.flush(timeout=5)
        finally:
            shutdown_logging()
            sentry_sdk.get_client().close()
    assert answer.status == 500
    bodies = sentry.bodies  # read after the flush: .bodies is what had arrived when read
    events = [
        item.payload.json
        for body in bodies
        for item in Envelope.deserialize(body).items
        if item.type == "event" and item.payload.json is not None
    ]
    assert len(events) == 1, events
    (event,) = events
    assert event["tags"]["request_id"] == "pay-1"
    assert event["release"] == "payments@1.2.3"
    assert "hunter2" not in str(event)

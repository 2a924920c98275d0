"""The outbox relay's backlog on the service's /metrics: it rises while the broker is down and
falls to 0 once the relay has drained the outbox (PostgreSQL and a real broker)."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from pydantic import BaseModel, SecretStr
from sqlalchemy.ext.asyncio import create_async_engine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from aegis.db import DatabaseSettings
from aegis.msg import Event, EventRegistry, KafkaSettings, Outbox
from aegis.service import ServiceSettings, bootstrap
from aegis.testing import RestartableServer, RunningServer, uvicorn_server


class ShippedData(BaseModel):
    order_id: str


class OrderShipped(Event[ShippedData]):
    type = "test.order.shipped"
    topic = "shipments"
    key_field = "order_id"


async def create_table(url: str, outbox: Outbox) -> None:
    engine = create_async_engine(url.replace("postgresql://", "postgresql+asyncpg://", 1))
    try:
        await outbox.create_table(engine)
    finally:
        await engine.dispose()


def outbox_samples(server: RunningServer) -> dict[str, float]:
    """The ``aegis_msg_outbox_*`` samples of the table ``shipments_outbox`` on /metrics."""
    with server.connect() as connection:
        body = connection.request("GET", "/metrics").body.decode()
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
        if sample.name.startswith("aegis_msg_outbox_")
        and not sample.name.endswith("_created")
        and sample.labels.get("table") == "shipments_outbox"
    }


def test_the_outbox_backlog_rises_on_metrics_while_the_broker_is_down_and_drains_to_zero(
    postgres_database: str,
) -> None:
    outbox = Outbox(table_name="shipments_outbox", registry=EventRegistry())
    asyncio.run(create_table(postgres_database, outbox))
    broker = RestartableServer("kafka")  # started later: until then nothing gets out
    settings = ServiceSettings(
        name="shipping",
        log=None,
        database=DatabaseSettings(url=SecretStr(postgres_database)),
        kafka=KafkaSettings(bootstrap_servers=broker.url, delivery_timeout=1.5),
    )
    app = Starlette()
    service = bootstrap(app, settings, registry=CollectorRegistry(), outbox=outbox)

    async def ship(request: Request) -> Response:
        assert service.db is not None
        async with service.db.transaction() as session:
            await outbox.add(session, OrderShipped(data=ShippedData(order_id="o-1")))
        return Response(status_code=204)

    async def next_round(request: Request) -> Response:
        """Answers when the relay has finished its next round."""
        assert service.relay is not None
        status = await service.relay.next_attempt()
        return JSONResponse({"published": status.published, "error": status.last_error})

    app.router.routes += [
        Route("/ship", ship, methods=["POST"]),
        Route("/next-round", next_round),
    ]
    try:
        with uvicorn_server(app) as server:
            # A round may wait out the relay's backoff (30 s at most) before it answers.
            with server.connect(timeout=60) as connection:
                assert connection.request("POST", "/ship").status == 204
                rounds = 1
                while connection.request("GET", "/next-round").json()["error"] is None:
                    rounds += 1
                    assert rounds < 20, "no round failed while the broker was down"
                connection.request("GET", "/next-round")  # after a backoff of one interval
            down = outbox_samples(server)
            assert down["aegis_msg_outbox_pending_events"] == 1
            assert down["aegis_msg_outbox_oldest_pending_age_seconds"] > 0
            assert down["aegis_msg_outbox_relayed_total"] == 0
            assert down["aegis_msg_outbox_relay_failures_total"] >= 1

            broker.start()
            with server.connect(timeout=60) as connection:
                rounds = 1
                while connection.request("GET", "/next-round").json()["published"] < 1:
                    rounds += 1
                    assert rounds < 20, "the relay published nothing once the broker was up"
                connection.request("GET", "/next-round")  # the next poll counts again
            drained = outbox_samples(server)
            assert drained["aegis_msg_outbox_pending_events"] == 0
            assert drained["aegis_msg_outbox_oldest_pending_age_seconds"] == 0
            assert drained["aegis_msg_outbox_relayed_total"] == 1
    finally:
        broker.stop()

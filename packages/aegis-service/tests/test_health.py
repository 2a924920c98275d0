"""/health/ready follows the configured components: not ready within one check interval of one
stopping, ready again when it returns; and the one lifespan starts and stops them around the
application's own."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import ExitStack, asynccontextmanager
from pathlib import Path

from prometheus_client import CollectorRegistry
from pydantic import BaseModel, SecretStr
from sqlalchemy import create_engine, make_url
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from aegis.auth import JWKS_PATH, current_principal
from aegis.cache import CacheSettings
from aegis.db import DatabaseSettings
from aegis.msg import Event, EventRegistry, KafkaSettings, Outbox
from aegis.service import AuthSettings, ServiceSettings, bootstrap
from aegis.testing import RestartableServer, RunningServer, TcpProxy, uvicorn_server

INTERVAL = 0.5


def ready(server: RunningServer) -> tuple[int, dict[str, str]]:
    with server.connect() as connection:
        response = connection.request("GET", "/health/ready")
    checks = response.json()["checks"]
    statuses = {name.partition(":")[0]: entries[0]["status"] for name, entries in checks.items()}
    return response.status, statuses


def test_ready_turns_false_within_one_interval_of_redis_stopping_and_true_when_it_returns(
    tmp_path: Path,
) -> None:
    with RestartableServer("redis") as redis_server:
        settings = ServiceSettings(
            name="health",
            log=None,
            cache=CacheSettings(url=SecretStr(redis_server.url), namespace="health"),
            database=DatabaseSettings(url=SecretStr(f"sqlite:///{tmp_path / 'health.db'}")),
            health_interval_seconds=INTERVAL,
        )
        app = Starlette()
        bootstrap(app, settings, registry=CollectorRegistry())
        with uvicorn_server(app) as server:
            assert ready(server) == (200, {"cache": "pass", "database": "pass"})
            redis_server.stop()
            time.sleep(INTERVAL)  # the stored result expires: the next probe checks again
            assert ready(server) == (503, {"cache": "fail", "database": "pass"})
            redis_server.start()
            time.sleep(INTERVAL)
            assert ready(server) == (200, {"cache": "pass", "database": "pass"})


def test_one_lifespan_starts_the_components_before_the_apps_own_and_stops_them_after() -> None:
    events: list[str] = []

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, str]]:
        events.append(f"app start, service started: {service.started}")
        yield {"from_app": "kept"}
        events.append(f"app stop, service started: {service.started}")

    app = Starlette(lifespan=lifespan)
    service = bootstrap(app, ServiceSettings(name="life", log=None), registry=CollectorRegistry())

    @service.on_stop
    async def stopping() -> None:
        events.append("service stop hook")

    with uvicorn_server(app) as server, server.connect() as connection:
        health = connection.request("GET", "/health")
    assert health.status == 200
    assert json.loads(health.body)["serviceId"] == "life"
    assert events == [
        "app start, service started: True",
        "app stop, service started: True",
        "service stop hook",
    ]


def test_ready_follows_the_broker() -> None:
    with RestartableServer("kafka") as broker:
        settings = ServiceSettings(
            name="broker",
            log=None,
            kafka=KafkaSettings(bootstrap_servers=broker.url, client_id="health"),
            health_interval_seconds=INTERVAL,
        )
        app = Starlette()
        service = bootstrap(app, settings, registry=CollectorRegistry())
        assert service.publisher is not None
        with uvicorn_server(app) as server:
            assert ready(server) == (200, {"broker": "pass"})
            broker.stop()
            time.sleep(INTERVAL)
            assert ready(server) == (503, {"broker": "fail"})
            broker.start()
            time.sleep(INTERVAL)
            assert ready(server) == (200, {"broker": "pass"})


class OrderPlacedData(BaseModel):
    order_id: str


class OrderPlaced(Event[OrderPlacedData]):
    type = "test.order.placed"
    version = 1
    topic = "orders"
    key_field = "order_id"


def test_the_outbox_is_relayed_while_the_app_runs_and_its_backlog_reported(
    tmp_path: Path,
) -> None:
    database = f"sqlite:///{tmp_path / 'outbox.db'}"
    outbox = Outbox(registry=EventRegistry())
    engine = create_engine(database)
    outbox.table.metadata.create_all(engine)
    engine.dispose()
    app = Starlette()
    settings = ServiceSettings(
        name="outbox", log=None, database=DatabaseSettings(url=SecretStr(database))
    )
    service = bootstrap(app, settings, registry=CollectorRegistry(), outbox=outbox)

    async def place(request: Request) -> Response:
        assert service.db is not None
        assert service.relay is not None
        async with service.db.transaction() as session:
            await outbox.add(session, OrderPlaced(data=OrderPlacedData(order_id="o-1")))
        status = await service.relay.next_attempt()
        return JSONResponse({"published": status.published})

    app.router.routes.append(Route("/orders", place, methods=["POST"]))
    with uvicorn_server(app) as server, server.connect() as connection:
        placed = connection.request("POST", "/orders")
        health = connection.request("GET", "/health")
    assert placed.json() == {"published": 1}
    (check,) = health.json()["checks"]["outbox:responseTime"]
    assert check["status"] == "pass"
    (age,) = health.json()["checks"]["outbox_age:responseTime"]
    assert age["status"] == "pass"
    assert service.relay is not None
    assert service.relay.status.published == 1


def test_a_verifying_service_is_ready_while_the_issuers_jwks_answers() -> None:
    issuer_app = Starlette()
    auth = AuthSettings(issuer="users", audience="shop")
    issuer = bootstrap(
        issuer_app, ServiceSettings(name="users", log=None, auth=auth), registry=CollectorRegistry()
    )
    assert issuer.tokens is not None
    token = issuer.tokens.issue_access_token("kim")

    async def whoami(request: Request) -> Response:
        principal = current_principal()
        return JSONResponse({"subject": principal.subject if principal else None})

    with ExitStack() as issuer_running:
        users = issuer_running.enter_context(uvicorn_server(issuer_app))
        verifying = AuthSettings(issuer="users", audience="shop", jwks_url=users.url + JWKS_PATH)
        app = Starlette(routes=[Route("/whoami", whoami)])
        settings = ServiceSettings(
            name="orders", log=None, auth=verifying, health_interval_seconds=INTERVAL
        )
        bootstrap(app, settings, registry=CollectorRegistry())
        with uvicorn_server(app) as orders:
            with orders.connect() as connection:
                answer = connection.request(
                    "GET", "/whoami", headers=[("Authorization", f"Bearer {token}")]
                )
            assert answer.json() == {"subject": "kim"}  # verified with the issuer's public key
            assert ready(orders) == (200, {"jwks": "pass"})
            issuer_running.close()  # the issuer stops
            time.sleep(INTERVAL)
            assert ready(orders) == (503, {"jwks": "fail"})


def test_not_ready_while_the_oldest_outbox_event_waits_longer_than_the_bound(
    tmp_path: Path,
) -> None:
    database = f"sqlite:///{tmp_path / 'outbox.db'}"
    outbox = Outbox(registry=EventRegistry())
    engine = create_engine(database)
    outbox.table.metadata.create_all(engine)
    engine.dispose()
    broker = RestartableServer("kafka")  # never started: the events cannot get out
    settings = ServiceSettings(
        name="stuck",
        log=None,
        database=DatabaseSettings(url=SecretStr(database)),
        kafka=KafkaSettings(bootstrap_servers=broker.url, delivery_timeout=0.5),
        health_interval_seconds=0,
        outbox_max_pending_age_seconds=0.2,
    )
    app = Starlette()
    service = bootstrap(app, settings, registry=CollectorRegistry(), outbox=outbox)

    async def place(request: Request) -> Response:
        assert service.db is not None
        async with service.db.transaction() as session:
            await outbox.add(session, OrderPlaced(data=OrderPlacedData(order_id="o-1")))
        return Response(status_code=204)

    app.router.routes.append(Route("/orders", place, methods=["POST"]))
    with uvicorn_server(app) as server:
        assert ready(server)[1]["outbox_age"] == "pass"
        with server.connect() as connection:
            assert connection.request("POST", "/orders").status == 204
        deadline = time.monotonic() + 10
        while (state := ready(server))[1]["outbox_age"] == "pass":
            assert time.monotonic() < deadline, state
            time.sleep(0.05)
        assert state[0] == 503


def test_ready_turns_false_within_one_interval_of_the_database_going_away(
    postgres_url: str,
) -> None:
    """The shared PostgreSQL must keep running: the path to it is cut instead (TcpProxy)."""
    target = make_url(postgres_url)
    socket_dir = target.query.get("host")  # an embedded server listens on a unix socket only
    database = (
        (f"{socket_dir}/.s.PGSQL.{target.port or 5432}", None)
        if isinstance(socket_dir, str)
        else (target.host or "127.0.0.1", target.port or 5432)
    )
    with TcpProxy(*database) as proxy:
        through_proxy = target.difference_update_query(["host"]).set(
            drivername="postgresql+asyncpg", host="127.0.0.1", port=proxy.port
        )
        settings = ServiceSettings(
            name="health",
            log=None,
            database=DatabaseSettings(
                url=SecretStr(through_proxy.render_as_string(hide_password=False))
            ),
            health_interval_seconds=INTERVAL,
        )
        app = Starlette()
        bootstrap(app, settings, registry=CollectorRegistry())
        with uvicorn_server(app) as server:
            assert ready(server) == (200, {"database": "pass"})
            proxy.cut()
            time.sleep(INTERVAL)  # the stored result expires: the next probe checks again
            assert ready(server) == (503, {"database": "fail"})
            proxy.restore()
            time.sleep(INTERVAL)
            assert ready(server) == (200, {"database": "pass"})

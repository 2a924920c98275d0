"""`./dev demo`: user-service and policy-service over real HTTP, step by step.

Default: both services in this process, two uvicorn servers on one event loop sharing one
in-memory event transport, each on its own SQLite file, with the in-memory cache and token store.
``--real``: each service in its own process on PostgreSQL, Redis and Kafka (URLs from the
options or AEGIS_TEST_POSTGRES_URL / AEGIS_TEST_REDIS_URL / AEGIS_TEST_KAFKA_BOOTSTRAP), each
with a database of its own. Either way the services' tables are those of examples/schemas,
created by aegis-schema's MigrationCoordinator before the services start.
``--topology NAME`` (implies ``--real``, may be repeated): ``postgres-replica`` puts the
databases on a primary with a streaming replica that the services read on (and shows a client
reading its own new user at once while the replica lags), ``redis-cluster`` or
``redis-sentinel`` gives the services' cache and revocations a ``redis+cluster://`` or
``redis+sentinel://`` URL; each is started for the demo unless ``./dev services up --topology
NAME`` runs one (its AEGIS_TEST_* variables set).
``--serve``: after the walkthrough, keep the services running and print their URLs and an admin
token. Exit code 0 only if every step behaved as expected.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any, Literal

import httpx
import policy_service
import psycopg
import user_service
import uvicorn
from pydantic import SecretStr

from aegis.auth import MemoryTokenStore
from aegis.core.redis_clients import cluster_client
from aegis.core.redis_urls import parse_redis_url
from aegis.db import DatabaseSettings
from aegis.log import ConsoleSettings, LogSettings
from aegis.msg import InMemoryTransport
from aegis.schema import MigrationCoordinator, MigrationRun, SchemaRegistry
from aegis.testing import (
    TOPOLOGY_NAMES,
    EmbeddedServer,
    RestartableServer,
    ServiceKind,
    Topology,
    TopologyName,
    create_database,
    database_url,
    die_with_parent,
    drop_database,
    start_server,
    start_topology,
)

ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "Admin-Passw0rd-Demo"  # noqa: S105  # the demo's own throwaway admin
PASSWORD = "Correct-Horse-Battery-9"  # noqa: S105
EVENT_WAIT_SECONDS = 30.0
OUTAGE_WAIT_SECONDS = 90.0
"""After a broker restart: the producer and the consumer group reconnect first."""
REVOCATION_BOUND_SECONDS = 5.0
"""A revocation reaches every service within this (the revocation replica's staleness bound)."""
SCHEMAS = Path(__file__).resolve().parent / "schemas"
"""The services' schema registry: every table each of them uses."""

SERVICES = ("users", "policies")
"""The services of examples/schemas/registry.yaml."""

QUIET_LOGS = LogSettings(console=ConsoleSettings(stream="stderr"), level="WARNING")
"""In one process the walkthrough owns standard output: the services log problems to stderr."""


@dataclass
class Services:
    """The running services: their base URLs, what ends when they stop, what they run on."""

    users_url: str
    policies_url: str
    stopped: Coroutine[Any, Any, object]
    """Ends when the services stop (Ctrl-C); close it unawaited when leaving on purpose."""
    databases: dict[str, str] = field(default_factory=dict)
    """Each service's database URL."""
    replicas: dict[str, str] = field(default_factory=dict)
    """``--topology postgres-replica``: each service's database on the replica."""
    broker: RestartableServer | None = None
    """``--real`` without ``--kafka-bootstrap``: the demo's own Kafka broker, which a step
    stops and starts again (empty, as Tansu keeps nothing)."""


@dataclass
class Walkthrough:
    """The steps run so far and what each showed."""

    users: httpx.AsyncClient
    policies: httpx.AsyncClient
    results: list[bool] = field(default_factory=list)
    admin_token: str = ""
    broker: RestartableServer | None = None
    """The demo's own Kafka broker (``--real``), which the outage step stops and restarts."""
    replica_url: str | None = None
    """``--topology postgres-replica``: user-service's database on the replica."""
    redis_topology: str | None = None
    """``--topology redis-cluster`` or ``redis-sentinel``: its name; ``redis_url`` its URL."""
    redis_url: str = ""

    def step(self, title: str, ok: bool, detail: str) -> bool:
        """Print one step's outcome and remember it."""
        self.results.append(ok)
        mark = "ok  " if ok else "FAIL"
        print(f"[{mark}] {len(self.results):2}. {title}: {detail}", flush=True)
        return ok


def bearer(token: str) -> dict[str, str]:
    """The Authorization header of ``token``."""
    return {"Authorization": f"Bearer {token}"}


def code_of(response: httpx.Response) -> str:
    """The problem+json ``code`` of an error response ("" when there is none)."""
    if response.headers.get("content-type", "").startswith("application/problem+json"):
        return str(response.json().get("code", ""))
    return ""


async def login(w: Walkthrough, email: str) -> dict[str, Any]:
    """Log ``email`` in and return the token response."""
    password = ADMIN_PASSWORD if email == ADMIN_EMAIL else PASSWORD
    response = await w.users.post("/auth/token", json={"email": email, "password": password})
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


async def wait_for(
    check: Callable[[], Awaitable[bool]], timeout: float = EVENT_WAIT_SECONDS
) -> bool:
    """Ask ``check`` until it says yes (an event crossing services takes a moment)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.1)
    return False


async def walkthrough(w: Walkthrough) -> None:  # one scripted story
    """The scripted story; each step prints its result."""
    run = uuid.uuid4().hex[:6]  # fresh e-mail addresses: --real databases outlive a run
    alice, bob = f"alice-{run}@example.com", f"bob-{run}@example.com"

    for name, client in (("user-service", w.users), ("policy-service", w.policies)):
        response = await client.get("/health")
        w.step(f"{name} /health", response.status_code == HTTPStatus.OK, response.json()["status"])

    weak = await w.users.post("/users", json={"email": alice, "name": "Alice", "password": "abc"})
    w.step(
        "weak password refused",
        weak.status_code == HTTPStatus.UNPROCESSABLE_ENTITY,
        f"{weak.status_code} {code_of(weak)}",
    )
    ids: dict[str, str] = {}
    for email, name in ((alice, "Alice"), (bob, "Bob")):
        response = await w.users.post(
            "/users", json={"email": email, "name": name, "password": PASSWORD}
        )
        ok = response.status_code == HTTPStatus.CREATED
        ids[email] = response.json()["id"] if ok else ""
        w.step(f"register {name}", ok, f"{response.status_code} id={ids[email]}")

    alice_tokens, bob_tokens = await login(w, alice), await login(w, bob)
    w.admin_token = (await login(w, ADMIN_EMAIL))["access_token"]
    w.step("log in Alice, Bob and the admin", True, f"expires_in={alice_tokens['expires_in']}s")

    me = await w.users.get("/users/me", headers=bearer(alice_tokens["access_token"]))
    w.step("GET /users/me as Alice", me.status_code == HTTPStatus.OK, me.json().get("email", ""))

    forbidden = await w.users.get("/users", headers=bearer(alice_tokens["access_token"]))
    w.step(
        "Alice lists all users (needs user:read)",
        forbidden.status_code == HTTPStatus.FORBIDDEN,
        f"{forbidden.status_code} {code_of(forbidden)}",
    )
    listing = await w.users.get(
        "/users", params={"email": run, "sort": "email"}, headers=bearer(w.admin_token)
    )
    names = [item["name"] for item in listing.json().get("items", [])]
    w.step("admin lists users (filter, sort)", names == ["Alice", "Bob"], f"{names}")

    policy = {"number": f"P-{run}", "premium": "120.50", "starts_on": "2027-01-01"}
    created = await w.policies.post(
        "/policies",
        json={**policy, "status": "active"},
        headers=bearer(alice_tokens["access_token"]),
    )
    policy_id = created.json().get("id", "")
    w.step(
        "Alice creates a policy (token verified through JWKS)",
        created.status_code == HTTPStatus.CREATED,
        f"{created.status_code} status={created.json().get('status')}",
    )
    unknown = await w.policies.post(
        "/policies",
        json={**policy, "number": f"U-{run}", "holder_id": str(uuid.uuid4())},
        headers=bearer(w.admin_token),
    )
    w.step(
        "policy for an unknown user (asked user-service with a service token)",
        unknown.status_code == HTTPStatus.UNPROCESSABLE_ENTITY
        and code_of(unknown) == "POLICY_HOLDER_UNKNOWN",
        f"{unknown.status_code} {code_of(unknown)}",
    )

    first = await w.users.get(f"/users/{ids[bob]}", headers=bearer(w.admin_token))
    second = await w.users.get(f"/users/{ids[bob]}", headers=bearer(w.admin_token))
    seen = (first.headers.get("x-cache"), second.headers.get("x-cache"))
    w.step("cached read of Bob", seen == ("miss", "hit"), f"X-Cache {seen[0]} then {seen[1]}")

    deleted = await w.users.delete(f"/users/{ids[alice]}", headers=bearer(w.admin_token))
    w.step(
        "admin deletes Alice",
        deleted.status_code == HTTPStatus.NO_CONTENT,
        str(deleted.status_code),
    )

    async def cancelled() -> bool:
        response = await w.policies.get(f"/policies/{policy_id}", headers=bearer(w.admin_token))
        return response.status_code == HTTPStatus.OK and response.json()["status"] == "cancelled"

    w.step(
        "user.deleted reaches policy-service: Alice's policy cancelled",
        await wait_for(cancelled),
        "status=cancelled",
    )
    refused = await w.policies.post(
        "/policies",
        json={**policy, "number": f"D-{run}", "holder_id": ids[alice]},
        headers=bearer(w.admin_token),
    )
    w.step(
        "new policy for deleted Alice refused",
        refused.status_code == HTTPStatus.CONFLICT and code_of(refused) == "POLICY_HOLDER_DELETED",
        f"{refused.status_code} {code_of(refused)}",
    )

    renewed = await w.users.post(
        "/auth/refresh", json={"refresh_token": bob_tokens["refresh_token"]}
    )
    w.step("Bob refreshes his tokens", renewed.status_code == HTTPStatus.OK, "new pair issued")
    reused = await w.users.post(
        "/auth/refresh", json={"refresh_token": bob_tokens["refresh_token"]}
    )
    reason = (
        reused.json().get("reason", "") if reused.status_code == HTTPStatus.UNAUTHORIZED else ""
    )
    w.step(
        "the old refresh token replayed: reuse detected",
        reused.status_code == HTTPStatus.UNAUTHORIZED and code_of(reused) == "AUTH_TOKEN_REVOKED",
        f"{reused.status_code} {code_of(reused)} reason={reason}",
    )
    family = await w.users.get("/users/me", headers=bearer(renewed.json()["access_token"]))
    w.step(
        "... and the whole login is revoked",
        family.status_code == HTTPStatus.UNAUTHORIZED,
        f"{family.status_code} {code_of(family)}",
    )

    await logout_is_honoured_everywhere(w, bob)
    await steps_of_the_servers(w, run)
    await show_metrics(w)


async def steps_of_the_servers(w: Walkthrough, run: str) -> None:
    """What the servers allow: a replica to hold back, a broker of the demo's own to restart."""
    if w.replica_url is not None:
        await own_writes_while_the_replica_lags(w, w.replica_url, run)
    if w.redis_topology is not None:
        await redis_topology_in_use(w, w.redis_topology, w.redis_url)
    if w.broker is not None:
        await events_resume_after_broker_restart(w, w.broker, run)


async def own_writes_while_the_replica_lags(w: Walkthrough, replica_url: str, run: str) -> None:
    """postgres-replica: a client reads its new user at once, another reads the lagging replica.

    The replica's replay is paused, so it lags for as long as the step needs. The demo's client
    carries the cookie user-service set when it created Dave (aegis-db's
    ReadYourWritesMiddleware, installed by bootstrap() with read replicas): its next request
    reads on the primary. A client without it reads on the replica, which has not replayed Dave.
    """
    email = f"dave-{run}@example.com"
    listing = {"email": f"dave-{run}"}
    admin = bearer(w.admin_token)
    async with httpx.AsyncClient(base_url=str(w.users.base_url), timeout=10.0) as other:

        async def listed(client: httpx.AsyncClient) -> list[str]:
            response = await client.get("/users", params=listing, headers=admin)
            return [item["name"] for item in response.json().get("items", [])]

        with replay_paused(replica_url):
            created = await w.users.post(
                "/users", json={"email": email, "name": "Dave", "password": PASSWORD}
            )
            cookie = created.headers.get("set-cookie", "").partition("=")[0]
            mine, theirs = await listed(w.users), await listed(other)
        w.step(
            "replica paused: the client that created Dave lists him at once",
            created.status_code == HTTPStatus.CREATED and mine == ["Dave"],
            f"{created.status_code}, {mine} (read on the primary: cookie {cookie})",
        )
        w.step(
            "... another client reads the lagging replica",
            theirs == [],
            f"{theirs}: Dave not replayed there yet",
        )
        resumed = time.monotonic()

        async def replayed() -> bool:
            return await listed(other) == ["Dave"]

        found = await wait_for(replayed)
        w.step(
            "replay resumed: the other client finds Dave on the replica",
            found,
            f"within {(time.monotonic() - resumed) * 1000:.0f} ms" if found else "never",
        )
    metrics = (await w.users.get("/metrics")).text
    routes = {
        route: sum(
            float(line.rpartition(" ")[2])
            for line in metrics.splitlines()
            if line.startswith(f'aegis_db_read_only_sessions_total{{route="{route}"')
        )
        for route in ("replica", "primary_own_write")
    }
    w.step(
        "user-service reads on the replica",
        routes["replica"] > 0 and routes["primary_own_write"] > 0,
        ", ".join(f"{route}={count:.0f}" for route, count in routes.items())
        + " read-only sessions",
    )


async def redis_topology_in_use(w: Walkthrough, name: str, url: str) -> None:
    """redis-cluster / redis-sentinel: the rate limit counts there; on a cluster, where keys are."""
    admin = bearer(w.admin_token)
    remaining = [
        (await w.users.get("/users/me", headers=admin)).headers.get("ratelimit-remaining", "")
        for _ in range(2)
    ]
    counts = remaining[0].isdigit() and remaining[1].isdigit()
    w.step(
        f"user-service's rate limit kept on {name}",
        counts and int(remaining[1]) == int(remaining[0]) - 1,
        f"RateLimit-Remaining {remaining[0]} then {remaining[1]}",
    )
    if name != "redis-cluster":
        return
    cluster = cluster_client(parse_redis_url(url))  # every seed of the URL
    try:
        # The cache's keys (namespace "users") are spread over the primaries by their slots;
        # the revocations' keys share the hash tag {users:}, so one primary holds them all.
        keys = [key async for key in cluster.scan_iter(match="*users:*", count=1000)]
        nodes: dict[str, set[str]] = {"cache": set(), "revocations": set()}
        for key in keys:
            kind = "revocations" if key.startswith(b"{users:}") else "cache"
            node = cluster.get_node_from_key(key)
            nodes[kind].add(node.name if node else "?")
    finally:
        await cluster.aclose()
    primaries = len(cluster.get_primaries())
    w.step(
        "the services' keys are on the cluster",
        bool(nodes["cache"]) and len(nodes["revocations"]) == 1,
        f"{len(keys)} keys: cache and rate limit on {len(nodes['cache'])} of {primaries} "
        f"primaries, the revocations' on {len(nodes['revocations'])} (hash tag {{users:}})",
    )


async def show_metrics(w: Walkthrough) -> None:
    """The request metrics of user-service, a few lines of them."""
    metrics = await w.users.get("/metrics")
    lines = [line for line in metrics.text.splitlines() if line.startswith("aegis_http_requests")]
    w.step(
        "user-service /metrics",
        metrics.status_code == HTTPStatus.OK and bool(lines),
        f"{len(lines)} series",
    )
    for line in lines[:3]:
        print(f"        {line}")


async def logout_is_honoured_everywhere(w: Walkthrough, email: str) -> None:
    """Log in, log out on user-service: policy-service refuses the token too, soon after."""
    auth = bearer((await login(w, email))["access_token"])
    before = await w.policies.get("/policies", headers=auth)
    out = await w.users.post("/auth/logout", headers=auth)
    logged_out = time.monotonic()

    async def refused() -> bool:
        answer = await w.policies.get("/policies", headers=auth)
        return answer.status_code == HTTPStatus.UNAUTHORIZED

    honoured = await wait_for(refused, REVOCATION_BOUND_SECONDS)
    elapsed = time.monotonic() - logged_out
    w.step(
        "logout on user-service is honoured by policy-service",
        before.status_code == HTTPStatus.OK
        and out.status_code == HTTPStatus.NO_CONTENT
        and honoured,
        f"{before.status_code} before, {out.status_code} logout, "
        + (f"401 within {elapsed * 1000:.0f} ms" if honoured else "still accepted"),
    )


async def events_resume_after_broker_restart(
    w: Walkthrough, broker: RestartableServer, run: str
) -> None:
    """Kill the broker, delete a user meanwhile, start it again empty: the event still arrives."""
    email = f"carol-{run}@example.com"
    created = await w.users.post(
        "/users", json={"email": email, "name": "Carol", "password": PASSWORD}
    )
    carol = created.json().get("id", "")
    token = (await login(w, email))["access_token"]
    policy = {"number": f"C-{run}", "premium": "80.00", "starts_on": "2027-01-01"}
    made = await w.policies.post("/policies", json=policy, headers=bearer(token))
    policy_id = made.json().get("id", "")
    await asyncio.to_thread(broker.stop)
    deleted = await w.users.delete(f"/users/{carol}", headers=bearer(w.admin_token))
    await asyncio.to_thread(broker.start)  # Tansu keeps nothing: topics and offsets are gone
    restarted = time.monotonic()

    async def cancelled() -> bool:
        response = await w.policies.get(f"/policies/{policy_id}", headers=bearer(w.admin_token))
        return response.status_code == HTTPStatus.OK and response.json()["status"] == "cancelled"

    arrived = await wait_for(cancelled, OUTAGE_WAIT_SECONDS)
    elapsed = time.monotonic() - restarted
    w.step(
        "events resume after a broker restart (empty): Carol's policy cancelled",
        made.status_code == HTTPStatus.CREATED
        and deleted.status_code == HTTPStatus.NO_CONTENT
        and arrived,
        "user.deleted written while the broker was down, "
        + (f"handled {elapsed:.1f} s after it came back" if arrived else "never handled"),
    )


def create_tables(urls: dict[str, str], data: Path) -> MigrationRun:
    """Create every table of examples/schemas in the services' new databases, and say so.

    aegis-schema's coordinator orders the tables (users before policies, which refer to them),
    runs each in a transaction and records the run in a history database in ``data``.
    """
    history = f"sqlite:///{data / 'schema-history.db'}"
    with MigrationCoordinator(SchemaRegistry.load(SCHEMAS), urls, history=history) as schemas:
        run = schemas.bootstrap()
    tables = ", ".join(step.schema_name for step in run.plan.steps)
    print(f"schemas        {len(run.plan.steps)} tables created by aegis-schema: {tables}")
    return run


@contextlib.asynccontextmanager
async def in_process(args: argparse.Namespace, data: Path) -> AsyncIterator[Services]:
    """Both services in this process: two uvicorn servers, one shared in-memory transport."""
    transport = InMemoryTransport()
    revocations = MemoryTokenStore()  # a logout on user-service reaches policy-service too
    users_url = f"http://{args.host}:{args.users_port}"
    databases = {service: f"sqlite:///{data / f'{service}.db'}" for service in SERVICES}
    await asyncio.to_thread(create_tables, databases, data)
    users = user_service.create_app(
        user_service.Settings(
            host=args.host,
            port=args.users_port,
            database=DatabaseSettings(
                url=SecretStr(databases["users"]), sqlite_transaction_mode="IMMEDIATE"
            ),
            admin_email=ADMIN_EMAIL,
            admin_password=SecretStr(ADMIN_PASSWORD),
            log=QUIET_LOGS,
        ),
        transport=transport,
        token_store=revocations,
    )
    policies = policy_service.create_app(
        policy_service.Settings(
            host=args.host,
            port=args.policies_port,
            database=DatabaseSettings(
                url=SecretStr(databases["policies"]), sqlite_transaction_mode="IMMEDIATE"
            ),
            users_url=users_url,
            log=QUIET_LOGS,
        ),
        transport=transport,
        token_store=revocations,
    )
    servers = [
        uvicorn.Server(uvicorn.Config(app, host=args.host, port=port, log_config=None))
        for app, port in ((users, args.users_port), (policies, args.policies_port))
    ]
    tasks = [asyncio.create_task(server.serve()) for server in servers]
    try:
        while not all(server.started for server in servers):
            if any(task.done() for task in tasks):
                raise SystemExit("a service failed to start (is the port taken?)")
            await asyncio.sleep(0.05)
        stopped = asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)  # Ctrl-C (uvicorn)
        yield Services(users_url, f"http://{args.host}:{args.policies_port}", stopped, databases)
    finally:
        for server in servers:
            server.should_exit = True
        await asyncio.gather(*tasks, return_exceptions=True)


@contextlib.asynccontextmanager
async def processes(
    args: argparse.Namespace, data: Path, env: dict[str, str] | None = None
) -> AsyncIterator[Services]:
    """``--real``: each service in its own process on PostgreSQL, Redis and Kafka.

    A server not given by its option (or AEGIS_TEST_* variable) is started here, embedded, and
    stopped on leaving, whether the walkthrough passed, failed or was interrupted. ``env``: more
    environment variables for both services.
    """
    async with contextlib.AsyncExitStack() as owned:
        replica_url = None
        if "postgres-replica" in args.topology:
            postgres = await owned.enter_async_context(postgres_replica())
            postgres_url, replica_url = postgres.url, postgres.replica_url
            print(f"postgres       primary and streaming replica: {postgres.origin}")
        else:
            postgres_url = args.postgres_url or await owned.enter_async_context(
                embedded("postgres")
            )
        for name in ("redis-cluster", "redis-sentinel"):
            if name in args.topology:
                redis = await owned.enter_async_context(redis_topology(name))
                print(f"redis          {name} {redis.url}: {redis.origin}")
                args.redis_url = redis.url
                # A rate limit too, to show it kept there (a high one: the demo is not limited).
                limit = {"limit": 10000, "period_seconds": 60, "key": "user"}
                env = {**(env or {}), "USERS_RATE_LIMIT": json.dumps(limit)}
        redis_url = args.redis_url or await owned.enter_async_context(embedded("redis"))
        broker = None
        kafka_bootstrap = args.kafka_bootstrap
        if kafka_bootstrap is None:  # entered, so it is stopped however the demo ends
            broker = await asyncio.to_thread(owned.enter_context, RestartableServer("kafka"))
            kafka_bootstrap = broker.url
            print(f"kafka          embedded broker {broker.url} (stopped when the demo ends)")
        servers: dict[ServiceKind, str] = {
            "postgres": postgres_url,
            "redis": redis_url,
            "kafka": kafka_bootstrap,
        }
        async with service_processes(
            args, data, servers, env or {}, replica_url=replica_url
        ) as services:
            services.broker = broker
            yield services


@contextlib.asynccontextmanager
async def embedded(kind: ServiceKind) -> AsyncIterator[str]:
    """An embedded server of ``kind`` for the demo's lifetime; its URL."""
    server: EmbeddedServer = await asyncio.to_thread(start_server, kind)
    print(f"{kind:<14} embedded server (pid {server.pid}, stopped when the demo ends)")
    try:
        yield server.url
    finally:
        await asyncio.to_thread(server.stop)


@contextlib.asynccontextmanager
async def service_processes(
    args: argparse.Namespace,
    data: Path,
    servers: dict[ServiceKind, str],
    env: dict[str, str],
    *,
    replica_url: str | None = None,
) -> AsyncIterator[Services]:
    """Start user-service, then policy-service, each a process with a database of its own.

    ``servers``: the URL of each kind of server (the Kafka one a bootstrap address);
    ``replica_url``: a streaming replica of the PostgreSQL server, which both services read on.
    """
    postgres_url, redis_url = servers["postgres"], servers["redis"]
    kafka_bootstrap = servers["kafka"]
    users_url = f"http://{args.host}:{args.users_port}"
    policies_url = f"http://{args.host}:{args.policies_port}"
    # A database per service on that server, the demo's own, dropped afterwards.
    names = {service: f"aegis_demo_{uuid.uuid4().hex[:8]}_{service}" for service in SERVICES}
    databases = {service: database_url(postgres_url, name) for service, name in names.items()}
    replicas = (
        {service: database_url(replica_url, name) for service, name in names.items()}
        if replica_url
        else {}
    )
    common = {**os.environ, "AEGIS_ENV": "development", **env}
    users_env = {
        "USERS_HOST": args.host,
        "USERS_PORT": str(args.users_port),
        "USERS_DATABASE__URL": databases["users"],
        "USERS_CACHE__URL": redis_url,
        "USERS_REDIS_URL": redis_url,
        "USERS_KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
        "USERS_KAFKA__CLIENT_ID": "user-service",
        "USERS_ADMIN_EMAIL": ADMIN_EMAIL,
        "USERS_ADMIN_PASSWORD": ADMIN_PASSWORD,
    }
    policies_env = {
        "POLICIES_HOST": args.host,
        "POLICIES_PORT": str(args.policies_port),
        "POLICIES_DATABASE__URL": databases["policies"],
        "POLICIES_REDIS_URL": redis_url,
        "POLICIES_KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
        "POLICIES_KAFKA__CLIENT_ID": "policy-service",
        # librdkafka's default session timeout makes a group join take ~23 s on Tansu.
        "POLICIES_KAFKA__CONSUMER": '{"session.timeout.ms": 6000, "heartbeat.interval.ms": 500}',
        "POLICIES_USERS_URL": users_url,
        # A fresh group per run: a shared Kafka may still hold an earlier run's group.
        "POLICIES_CONSUMER_GROUP": f"policy-service-{uuid.uuid4().hex[:8]}",
    }
    if replicas:  # read-only sessions on the replica, read-your-writes per client
        users_env["USERS_DATABASE__READ_REPLICA_URLS"] = json.dumps([replicas["users"]])
        policies_env["POLICIES_DATABASE__READ_REPLICA_URLS"] = json.dumps([replicas["policies"]])
    started: list[subprocess.Popen[bytes]] = []
    try:
        for name in names.values():
            await asyncio.to_thread(create_database, postgres_url, name)
        await asyncio.to_thread(create_tables, databases, data)
        if replicas:  # the services read there from their first request on
            await asyncio.to_thread(wait_replayed, databases["users"], replicas["users"])
        for module, service_env, url in (
            ("user_service", users_env, users_url),
            ("policy_service", policies_env, policies_url),
        ):
            with (data / f"{module}.log").open("wb") as log:  # the child keeps its own copy
                started.append(
                    subprocess.Popen(
                        [sys.executable, "-m", module],
                        env={**common, **service_env},
                        cwd=data,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        # a demo killed outright (SIGKILL, a CI timeout) takes them along
                        preexec_fn=die_with_parent(),  # noqa: PLW1509 - only prctl runs in the child
                    )
                )
            await ready(url, started[-1], data / f"{module}.log")
        exited = asyncio.to_thread(started[0].wait)  # Ctrl-C reaches the services too
        yield Services(users_url, policies_url, exited, databases, replicas)
    finally:
        for process in started:
            process.send_signal(signal.SIGINT)
        for process in started:
            try:
                await asyncio.to_thread(process.wait, 15)
            except subprocess.TimeoutExpired:
                process.kill()
        for name in names.values():
            await asyncio.to_thread(drop_database, postgres_url, name)


# --topology: the multi-node servers of aegis-testing, started here unless one runs already.

REPLAY_WAIT_SECONDS = 30.0
REDIS_VARIABLES: dict[TopologyName, str] = {
    "redis-cluster": "AEGIS_TEST_REDIS_CLUSTER_URL",
    "redis-sentinel": "AEGIS_TEST_REDIS_SENTINEL_URL",
}
"""Where ``services up --topology NAME`` leaves a Redis topology's URL."""
REPLICA_VARIABLE = "AEGIS_TEST_POSTGRES_REPLICA_URL"
"""``services up --topology postgres-replica``: the replica (``AEGIS_TEST_POSTGRES_URL``: the
primary)."""


@dataclass(frozen=True)
class Postgres:
    """A PostgreSQL primary for the services' databases and its streaming replica."""

    url: str
    replica_url: str
    origin: str
    """Where they come from, for the demo to print."""


@dataclass(frozen=True)
class Redis:
    """A ``redis+cluster://`` or ``redis+sentinel://`` URL for the services."""

    url: str
    origin: str
    """Where it comes from, for the demo to print."""


@contextlib.asynccontextmanager
async def started(
    name: TopologyName, variable: str, *, also: str | None = None
) -> AsyncIterator[tuple[dict[str, str], str]]:
    """The variables of topology ``name`` and where it comes from.

    The running topology that ``variable`` (and ``also``) name, else one started here and
    stopped on leaving.
    """
    wanted = [key for key in (variable, also) if key]
    if all(os.environ.get(key) for key in wanted):
        yield {key: os.environ[key] for key in wanted}, f"the running one named by {variable}"
        return
    topology: Topology = await asyncio.to_thread(start_topology, name)
    origin = (
        f"{len(topology.nodes)} nodes started in {topology.startup_seconds or 0:.1f} s "
        "(stopped when the demo ends)"
    )
    try:
        yield topology.environment(), origin
    finally:
        await asyncio.to_thread(topology.stop)


@contextlib.asynccontextmanager
async def postgres_replica() -> AsyncIterator[Postgres]:
    """The primary and the replica of a postgres-replica topology (running, or started)."""
    primary = "AEGIS_TEST_POSTGRES_URL"
    async with started("postgres-replica", REPLICA_VARIABLE, also=primary) as (found, origin):
        yield Postgres(found[primary], found[REPLICA_VARIABLE], origin)


@contextlib.asynccontextmanager
async def redis_topology(name: Literal["redis-cluster", "redis-sentinel"]) -> AsyncIterator[Redis]:
    """The ``redis+cluster://`` or ``redis+sentinel://`` URL of a topology (running, or started)."""
    variable = REDIS_VARIABLES[name]
    async with started(name, variable) as (found, origin):
        yield Redis(found[variable], origin)


def wait_replayed(primary_url: str, replica_url: str) -> float:
    """Wait until the replica has replayed everything the primary has written; the seconds."""
    began = time.monotonic()
    with psycopg.connect(primary_url, autocommit=True) as primary:
        written = primary.execute("SELECT pg_current_wal_lsn()::text").fetchone()
    assert written is not None
    with psycopg.connect(replica_url, autocommit=True) as replica:
        while True:
            behind = replica.execute(
                "SELECT pg_wal_lsn_diff(%s::pg_lsn, pg_last_wal_replay_lsn())", (written[0],)
            ).fetchone()
            if behind is not None and behind[0] is not None and behind[0] <= 0:
                return time.monotonic() - began
            if time.monotonic() - began > REPLAY_WAIT_SECONDS:
                raise SystemExit(f"the replica did not catch up within {REPLAY_WAIT_SECONDS} s")
            time.sleep(0.02)


@contextlib.contextmanager
def replay_paused(replica_url: str) -> Iterator[None]:
    """The replica receives the primary's WAL but replays none of it until the block ends."""
    with psycopg.connect(replica_url, autocommit=True) as replica:
        replica.execute("SELECT pg_wal_replay_pause()")
    try:
        yield
    finally:
        with psycopg.connect(replica_url, autocommit=True) as replica:
            replica.execute("SELECT pg_wal_replay_resume()")


async def ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    """Wait until ``url``/health/ready answers 200; stop when the process dies."""
    async with httpx.AsyncClient(base_url=url, timeout=2.0) as client:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise SystemExit(f"{url}: the service exited:\n{log.read_text()[-3000:]}")
            with contextlib.suppress(httpx.TransportError):
                if (await client.get("/health/ready")).status_code == HTTPStatus.OK:
                    return
            await asyncio.sleep(0.2)
    raise SystemExit(f"{url} did not become ready:\n{log.read_text()[-3000:]}")


async def demo(args: argparse.Namespace) -> int:
    """Start the services, run the walkthrough, print the summary; the exit code."""
    with tempfile.TemporaryDirectory(prefix="aegis-demo-") as directory:
        data = Path(directory)
        services = processes(args, data) if args.real else in_process(args, data)
        async with services as running:
            users_url, policies_url = running.users_url, running.policies_url
            print(f"user-service   {users_url}\npolicy-service {policies_url}", flush=True)
            async with (
                httpx.AsyncClient(base_url=users_url, timeout=10.0) as users,
                httpx.AsyncClient(base_url=policies_url, timeout=10.0) as policies,
            ):
                w = Walkthrough(
                    users,
                    policies,
                    broker=running.broker,
                    replica_url=running.replicas.get("users"),
                    redis_topology=next(
                        (name for name in args.topology if name.startswith("redis-")), None
                    ),
                    redis_url=args.redis_url or "",
                )
                await walkthrough(w)
            passed = sum(w.results)
            verdict = "every step behaved" if all(w.results) else "SOME STEPS FAILED"
            print(f"demo: {passed}/{len(w.results)} steps passed: {verdict}", flush=True)
            if not all(w.results):
                for log in sorted(data.glob("*.log")):  # the services' own lines (--real)
                    print(f"--- {log.name}\n{log.read_text()[-4000:]}", file=sys.stderr)
            if args.serve:
                print(
                    f"\nserving until Ctrl-C\n  {users_url}/docs\n  {policies_url}/docs\n"
                    f"admin token:\n  export TOKEN={w.admin_token}",
                    flush=True,
                )
                await running.stopped
            else:
                running.stopped.close()  # never awaited: the services are stopped on leaving
        return 0 if w.results and all(w.results) else 1


def main(argv: list[str] | None = None) -> int:
    """Parse the options and run the demo."""
    parser = argparse.ArgumentParser(prog="./dev demo", description=__doc__.splitlines()[0])
    parser.add_argument("--real", action="store_true", help="PostgreSQL, Redis and Kafka")
    parser.add_argument("--serve", action="store_true", help="keep the services running")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--users-port", type=int, default=8001)
    parser.add_argument("--policies-port", type=int, default=8002)
    parser.add_argument("--postgres-url", default=os.environ.get("AEGIS_TEST_POSTGRES_URL"))
    parser.add_argument("--redis-url", default=os.environ.get("AEGIS_TEST_REDIS_URL"))
    parser.add_argument("--kafka-bootstrap", default=os.environ.get("AEGIS_TEST_KAFKA_BOOTSTRAP"))
    parser.add_argument(
        "--topology",
        action="append",
        default=[],
        choices=TOPOLOGY_NAMES,
        help="run on this multi-node topology (implies --real; may be repeated)",
    )
    args = parser.parse_args(argv)
    if {"redis-cluster", "redis-sentinel"} <= set(args.topology):
        parser.error("one Redis topology at a time: redis-cluster or redis-sentinel")
    args.real = args.real or bool(args.topology)
    try:
        return asyncio.run(demo(args))
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())

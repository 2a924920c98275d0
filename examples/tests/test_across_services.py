"""What aegis guarantees between services, checked on user-service and policy-service running as
two processes on PostgreSQL, Redis and Kafka, as ``./dev demo --real`` runs them.

The Kafka broker is the test's own (killed and restarted empty, as Tansu keeps nothing); both
services export their spans over OTLP/HTTP to a local receiver; their JSON logs go to files.
docs/across-services.md describes the guarantees these tests hold.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import secrets
import socket
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import psycopg
import pytest
from anyio.from_thread import start_blocking_portal

from aegis.testing import ExportedSpan, HttpRecorder, RestartableServer, exported_spans

DEMO = Path(__file__).resolve().parents[1] / "demo.py"
PASSWORD = "Correct-Horse-Battery-9"
WAIT_SECONDS = 120.0
"""The longest any cross-service effect may take here (a broker restart included)."""
CONSUMER_KIND = 5  # OTLP SpanKind


def load_demo() -> ModuleType:
    """examples/demo.py, whose ``processes()`` starts the services as ``--real`` does."""
    spec = importlib.util.spec_from_file_location("aegis_demo", DEMO)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def eventually(check: Callable[[], bool], timeout: float = WAIT_SECONDS) -> bool:
    """Ask ``check`` until it says yes or ``timeout`` seconds passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


@dataclass
class Stack:
    """The two running services and what the tests reach them through."""

    demo: ModuleType
    users: httpx.Client
    policies: httpx.Client
    databases: dict[str, str]
    broker: RestartableServer
    collector: HttpRecorder
    logs: Path
    admin: dict[str, str]

    def log_lines(self, module: str) -> list[dict[str, Any]]:
        """The JSON lines ``module`` (user_service, policy_service) has logged so far."""
        lines = []
        for line in (self.logs / f"{module}.log").read_text().splitlines():
            if line.startswith("{"):
                lines.append(json.loads(line))
        return lines

    def query(self, service: str, sql: str, *params: object) -> list[tuple[Any, ...]]:
        """Rows of ``sql`` in ``service``'s own database."""
        with psycopg.connect(self.databases[service], autocommit=True) as connection:
            return connection.execute(sql, params).fetchall()


@pytest.fixture(scope="module")
def stack(
    postgres_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    demo = load_demo()
    logs = tmp_path_factory.mktemp("across-services")
    args = argparse.Namespace(
        host="127.0.0.1",
        users_port=free_port(),
        policies_port=free_port(),
        postgres_url=postgres_url,
        redis_url=redis_url,
        kafka_bootstrap=None,
        topology=[],
    )
    with HttpRecorder() as collector, RestartableServer("kafka") as broker:
        args.kafka_bootstrap = broker.url
        traces = f"http://{collector.address}/v1/traces"
        env = {
            "USERS_TRACING__ENDPOINT": traces,
            "POLICIES_TRACING__ENDPOINT": traces,
            "OTEL_BSP_SCHEDULE_DELAY": "100",  # the SDK's batch exporter: every 0.1 s
        }
        with (
            start_blocking_portal() as portal,
            portal.wrap_async_context_manager(demo.processes(args, logs, env)) as running,
        ):
            running.stopped.close()  # never awaited: the services stop when the block ends
            with (
                httpx.Client(base_url=running.users_url, timeout=30) as users,
                httpx.Client(base_url=running.policies_url, timeout=30) as policies,
            ):
                login = {"email": demo.ADMIN_EMAIL, "password": demo.ADMIN_PASSWORD}
                token = users.post("/auth/token", json=login).json()["access_token"]
                yield Stack(
                    demo,
                    users,
                    policies,
                    running.databases,
                    broker,
                    collector,
                    logs,
                    {"Authorization": f"Bearer {token}"},
                )


def register(stack: Stack) -> tuple[dict[str, Any], dict[str, str]]:
    """A new user of user-service and the Authorization header of their login."""
    email = f"u-{uuid.uuid4().hex[:10]}@example.com"
    created = stack.users.post("/users", json={"email": email, "name": "U", "password": PASSWORD})
    assert created.status_code == HTTPStatus.CREATED, created.text
    login = stack.users.post("/auth/token", json={"email": email, "password": PASSWORD})
    assert login.status_code == HTTPStatus.OK, login.text
    return created.json(), {"Authorization": f"Bearer {login.json()['access_token']}"}


def code_of(response: httpx.Response) -> str:
    return str(response.json().get("code", "")) if response.content else ""


def test_a_logout_on_user_service_is_refused_by_policy_service_within_the_bound(
    stack: Stack,
) -> None:
    _, auth = register(stack)
    assert stack.policies.get("/policies", headers=auth).status_code == HTTPStatus.OK

    assert stack.users.post("/auth/logout", headers=auth).status_code == HTTPStatus.NO_CONTENT

    assert eventually(
        lambda: (
            stack.policies.get("/policies", headers=auth).status_code == HTTPStatus.UNAUTHORIZED
        ),
        timeout=stack.demo.REVOCATION_BOUND_SECONDS,
    )
    refused = stack.policies.get("/policies", headers=auth)
    assert code_of(refused) == "AUTH_TOKEN_REVOKED"
    assert stack.users.get("/users/me", headers=auth).status_code == HTTPStatus.UNAUTHORIZED


def test_a_refresh_token_replayed_revokes_the_login_on_policy_service_too(stack: Stack) -> None:
    user, _ = register(stack)
    login = stack.users.post(
        "/auth/token", json={"email": user["email"], "password": PASSWORD}
    ).json()
    renewed = stack.users.post("/auth/refresh", json={"refresh_token": login["refresh_token"]})
    auth = {"Authorization": f"Bearer {renewed.json()['access_token']}"}
    assert stack.policies.get("/policies", headers=auth).status_code == HTTPStatus.OK

    replayed = stack.users.post("/auth/refresh", json={"refresh_token": login["refresh_token"]})

    assert code_of(replayed) == "AUTH_TOKEN_REVOKED"
    assert eventually(
        lambda: (
            stack.policies.get("/policies", headers=auth).status_code == HTTPStatus.UNAUTHORIZED
        ),
        timeout=stack.demo.REVOCATION_BOUND_SECONDS,
    )


def spans_of(stack: Stack, trace_id: str) -> list[ExportedSpan]:
    return [span for span in exported_spans(stack.collector.bodies) if span.trace_id == trace_id]


def test_one_trace_runs_from_the_request_through_the_outbox_and_kafka_to_the_handler(
    stack: Stack,
) -> None:
    user, auth = register(stack)
    policy = {"number": f"T-{uuid.uuid4().hex[:8]}", "premium": "10.00", "starts_on": "2027-01-01"}
    made = stack.policies.post("/policies", json=policy, headers=auth)
    assert made.status_code == HTTPStatus.CREATED, made.text
    trace_id = secrets.token_hex(16)
    caller = {**stack.admin, "traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"}

    deleted = stack.users.delete(f"/users/{user['id']}", headers=caller)

    assert deleted.status_code == HTTPStatus.NO_CONTENT
    (headers,) = stack.query(
        "users",
        "SELECT headers FROM aegis_outbox WHERE aggregateid = %s AND type LIKE %s",
        user["id"],
        "%deleted%",
    )[0]
    assert trace_id in json.loads(headers)["ce_traceparent"]
    assert eventually(
        lambda: any(
            line.get("event") == "user deleted: policies cancelled"
            and line.get("holder_id") == user["id"]
            for line in stack.log_lines("policy_service")
        )
    )
    (handled,) = [
        line
        for line in stack.log_lines("policy_service")
        if line.get("event") == "user deleted: policies cancelled"
        and line.get("holder_id") == user["id"]
    ]
    assert handled["trace_id"] == trace_id

    # The exporters send in batches: wait for the consuming span and its parent themselves, not
    # just any span of each service (database writes can reach the collector a batch earlier).
    def consumed_with_parent() -> bool:
        spans = spans_of(stack, trace_id)
        ids = {span.span_id for span in spans}
        return any(
            span.service == "policy-service"
            and span.kind == CONSUMER_KIND
            and span.parent_span_id in ids
            for span in spans
        )

    assert eventually(consumed_with_parent)
    spans = spans_of(stack, trace_id)
    by_id = {span.span_id: span for span in spans}
    (consumed,) = [s for s in spans if s.service == "policy-service" and s.kind == CONSUMER_KIND]
    parent = by_id.get(consumed.parent_span_id or "")
    assert parent is not None
    assert parent.service == "user-service"
    writes = [s for s in spans if s.service == "policy-service" and s.span_id != consumed.span_id]
    assert writes, "policy-service's database writes are in the trace"
    access = [
        line
        for line in stack.log_lines("user_service")
        if line.get("trace_id") == trace_id and line.get("status") == HTTPStatus.NO_CONTENT
    ]
    assert access, "user-service's access line carries the trace id"


def test_every_event_reaches_policy_service_in_per_user_order_through_two_broker_outages(
    stack: Stack,
) -> None:
    versions: dict[str, int] = {}

    def changes(new_users: int) -> None:
        for _ in range(new_users):
            user, _ = register(stack)
            versions[user["id"]] = user["version"]
        for user_id, version in versions.items():
            renamed = stack.users.patch(
                f"/users/{user_id}",
                json={"version": version, "name": f"v{version + 1}"},
                headers=stack.admin,
            )
            assert renamed.status_code == HTTPStatus.OK, renamed.text
            versions[user_id] = renamed.json()["version"]

    changes(3)
    for _ in range(2):
        stack.broker.stop()
        changes(2)  # the outbox keeps them while the broker is gone
        stack.broker.start()  # empty: topics and committed offsets are gone
        changes(1)

    def projected() -> bool:
        rows = stack.query(
            "policies",
            "SELECT id::text, user_version FROM known_users WHERE id::text = ANY(%s)",
            list(versions),
        )
        return dict(rows) == versions

    assert eventually(projected)
    events = stack.query(
        "users",
        "SELECT id, aggregateid FROM aegis_outbox WHERE aggregateid = ANY(%s) ORDER BY position",
        list(versions),
    )
    handled = dict(
        stack.query(
            "policies",
            "SELECT split_part(key, ':', 2), updated_at_ms FROM aegis_msg_processed "
            "WHERE status = 'done'",
        )
    )
    missing = [event_id for event_id, _ in events if event_id not in handled]
    assert missing == []
    for user_id in versions:  # handled in the order user-service wrote them
        times = [handled[event_id] for event_id, owner in events if owner == user_id]
        assert times == sorted(times), user_id

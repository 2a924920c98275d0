"""The sample services never log or serve a request as an earlier caller on the same connection.

user-service and policy-service run under real uvicorn servers with uvicorn's defaults (no
``--reset-contextvars``), on both loops and both HTTP implementations. An admin, a normal user
and anonymous callers share keep-alive connections, one request at a time and pipelined, with
bodies above uvicorn's 64 KiB high-water mark; every access line must carry the ``user_id`` of
its own caller and an anonymous request's none, and what needs a role must refuse anonymous
callers.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import policy_service
import pytest
import user_service
from pydantic import SecretStr

from aegis.db import DatabaseSettings
from aegis.log import LogSettings, configured_logging
from aegis.msg import InMemoryTransport
from aegis.testing import (
    UVICORN_LOOPS,
    UVICORN_PROTOCOLS,
    LogLines,
    RawConnection,
    RunningServer,
    http_request,
    uvicorn_server,
)

CreateTables = Callable[[Mapping[str, str]], object]
"""examples/conftest.py's ``create_tables``: the tables through aegis-schema's coordinator."""

SECRET = SecretStr("test-secret-of-policy-service")
ADMIN_PASSWORD = "Admin-Passw0rd-Isolation"
USER = {"email": "kim@example.com", "name": "Kim Minji", "password": "Lantern-Harbor-7-Quartz"}
LARGE_BODY = b'{"padding": "' + b"x" * (80 * 1024) + b'"}'
"""Above uvicorn's 64 KiB high-water mark; not a valid body for any route (422)."""

ROUNDS = 25
"""Rounds of mixed callers per connection and service."""

QUIET_PATHS = {"/health", "/metrics"}
"""Probes and scrapes get no access line (aegis-service's default ``quiet_paths``)."""

_REQUEST_NUMBERS = itertools.count()


@dataclass(frozen=True)
class Call:
    """One request of the scenario: who sends it, what, and the status it must get."""

    caller: str | None  # "admin", "user" or None (anonymous)
    method: str
    path: str
    status: int
    body: bytes = b""


@dataclass
class Services:
    """Both services, the callers' tokens and ids, and every access line."""

    users: RunningServer
    policies: RunningServer
    tokens: dict[str, str]
    ids: dict[str, str]
    lines: LogLines


@pytest.fixture(params=list(itertools.product(UVICORN_LOOPS, UVICORN_PROTOCOLS)), ids="-".join)
def services(
    request: pytest.FixtureRequest, tmp_path: Path, create_tables: CreateTables
) -> Iterator[Services]:
    loop, http = request.param
    urls = {service: f"sqlite:///{tmp_path / f'{service}.db'}" for service in ("users", "policies")}
    create_tables(urls)
    lines = LogLines("aegis.access")
    users_app = user_service.create_app(
        user_service.Settings(
            database=DatabaseSettings(
                url=SecretStr(urls["users"]), sqlite_transaction_mode="IMMEDIATE"
            ),
            admin_password=SecretStr(ADMIN_PASSWORD),
            policy_service_secret=SECRET,
            log=None,  # the test owns logging
        ),
        transport=InMemoryTransport(),
    )
    options: dict[str, Any] = {"loop": loop, "http": http}
    with (
        configured_logging(LogSettings(console=None, level="INFO"), outputs=[lines]),
        uvicorn_server(users_app, **options) as users,
    ):
        policies_app = policy_service.create_app(
            policy_service.Settings(
                database=DatabaseSettings(
                    url=SecretStr(urls["policies"]), sqlite_transaction_mode="IMMEDIATE"
                ),
                users_url=users.url,
                client_secret=SECRET,
                log=None,
            ),
            transport=InMemoryTransport(),
        )
        with uvicorn_server(policies_app, **options) as policies:
            # uvicorn's defaults: isolation must not come from its opt-in context reset
            assert not getattr(users.server.config, "reset_contextvars", False)
            tokens, ids = sign_in(users)
            yield Services(users, policies, tokens, ids, lines)


def sign_in(users: RunningServer) -> tuple[dict[str, str], dict[str, str]]:
    """Register the normal user, log both callers in: their access tokens and user ids."""
    tokens, ids = {}, {}
    as_json = {"Content-Type": "application/json"}
    with users.connect() as connection:
        signup = connection.request(
            "POST", "/users", headers=as_json, body=json.dumps(USER).encode()
        )
        assert signup.status == 201, signup.body
        credentials = {
            "admin": {"email": user_service.Settings().admin_email, "password": ADMIN_PASSWORD},
            "user": {"email": USER["email"], "password": USER["password"]},
        }
        for caller, login in credentials.items():
            answer = connection.request(
                "POST", "/auth/token", headers=as_json, body=json.dumps(login).encode()
            )
            assert answer.status == 200, answer.body
            tokens[caller] = answer.json()["access_token"]
            me = connection.request(
                "GET", "/users/me", headers={"Authorization": f"Bearer {tokens[caller]}"}
            )
            ids[caller] = me.json()["id"]
    return tokens, ids


def user_service_round(ids: Mapping[str, str]) -> list[Call]:
    """Mixed callers on user-service; anonymous ones right after each authenticated one."""
    admin, user = ids["admin"], ids["user"]
    return [
        Call("admin", "PATCH", f"/users/{admin}", 422, LARGE_BODY),
        Call(None, "GET", "/users/me", 401),
        Call(None, "GET", "/.well-known/jwks.json", 200),
        Call("user", "GET", f"/users/{user}", 200),
        Call(None, "GET", "/users", 401),
        Call("admin", "GET", "/users", 200),
        Call(None, "POST", "/auth/token", 422, LARGE_BODY),
        Call(None, "GET", "/health", 200),
        Call("user", "GET", "/users", 403),
        Call("admin", "GET", f"/users/{user}", 200),
        Call(None, "GET", f"/users/{user}", 401),
    ]


def policy_service_round(ids: Mapping[str, str]) -> list[Call]:
    """Mixed callers on policy-service, whose tokens it verifies through user-service's JWKS."""
    return [
        Call("admin", "POST", "/policies", 422, LARGE_BODY),
        Call(None, "GET", "/policies", 401),
        Call(None, "GET", "/health", 200),
        Call("user", "GET", "/policies", 200),
        Call(None, "POST", "/policies", 401, LARGE_BODY),
        Call("admin", "GET", "/policies", 200),
        Call(None, "GET", "/metrics", 200),
        Call("user", "DELETE", f"/policies/{ids['user']}", 404),
        Call(None, "DELETE", f"/policies/{ids['user']}", 401),
    ]


def run_rounds(
    server: RunningServer, calls: list[Call], services: Services, *, pipelined: bool
) -> None:
    """``ROUNDS`` rounds of ``calls`` on one keep-alive connection; then every line is checked."""
    request_ids, sent = [], []
    with server.connect() as connection:
        for _ in range(ROUNDS):
            batch = [(call, request(call, services)) for call in calls]
            if pipelined:
                connection.send(b"".join(data for _, (_, data) in batch))
                answers = [read_answer(connection, call) for call, _ in batch]
            else:
                answers = []
                for call, (_, data) in batch:
                    connection.send(data)
                    answers.append(read_answer(connection, call))
            for (call, (request_id, _)), status in zip(batch, answers, strict=True):
                assert status == call.status, (call, request_id)
                if call.path not in QUIET_PATHS:
                    request_ids.append(request_id)
                    sent.append(call)
    lines = services.lines.wait_for("request_id", request_ids)
    checked = list(zip(sent, lines, strict=True))
    checked.sort(key=lambda item: item[0].caller is not None)  # what must never happen first
    for call, line in checked:
        expected = services.ids[call.caller] if call.caller is not None else None
        assert line.get("user_id") == expected, (call, line.get("user_id"), line)
        assert line["status"] == call.status, (call, line)


def request(call: Call, services: Services) -> tuple[str, bytes]:
    request_id = f"iso-{next(_REQUEST_NUMBERS)}"
    headers = [("X-Request-ID", request_id), ("Content-Type", "application/json")]
    if call.caller is not None:
        headers.append(("Authorization", f"Bearer {services.tokens[call.caller]}"))
    return request_id, http_request(call.method, call.path, headers=headers, body=call.body)


def read_answer(connection: RawConnection, call: Call) -> int:
    return connection.read_response(head=call.method == "HEAD").status


def test_the_sample_services_log_every_request_as_its_own_caller(services: Services) -> None:
    for pipelined in (False, True):
        run_rounds(services.users, user_service_round(services.ids), services, pipelined=pipelined)
        calls = policy_service_round(services.ids)
        run_rounds(services.policies, calls, services, pipelined=pipelined)

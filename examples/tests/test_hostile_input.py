"""Hostile client input against both sample services, on SQLite and on PostgreSQL: never a 5xx.

Every route of user-service and policy-service (enumerated from the apps' routers, path
parameters filled) gets arbitrary JSON bodies and query values: lone surrogates, NUL, RTL
marks, very long strings, integers beyond 64 bits, floats and NaN, deep nesting, wrong types,
with and without a valid token. Each answer must be below 500, every error must be
problem+json, and a refused request must leave the services' tables as they were.

The services run as the demo runs them (user-service on a real socket, since policy-service
fetches its JWKS and users over HTTP) inside one event loop in a background thread, so the
synchronous hypothesis tests drive them through an anyio blocking portal.
"""

from __future__ import annotations

import functools
import json
import socket
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio
import httpx
import policy_service
import pytest
import sqlalchemy as sa
import user_service
import uvicorn
from anyio.from_thread import BlockingPortal, start_blocking_portal
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.trace import NoOpTracerProvider
from pydantic import SecretStr
from starlette.routing import Route

from aegis.db import DatabaseSettings
from aegis.msg import InMemoryTransport
from aegis.schema import MigrationCoordinator, SchemaRegistry
from aegis.testing import create_database, drop_database, unique_name

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"
SECRET = SecretStr("test-secret-of-policy-service")
ADMIN_PASSWORD = "Admin-Passw0rd-Test"
PASSWORD = "Correct-Horse-Battery-9"
PROBLEM = "application/problem+json"

# Tables a refused request must leave alone. known_users (policy-service's projection of
# user-service, refreshed by events and by a holder lookup) and processed_events change
# independently of the request under test, so they are not counted.
TABLES = {"users": ("users", "aegis_outbox"), "policies": ("policies",)}

EXAMPLES_PER_ROUTE = 100
"""Enough to hit every edge-case family on every route; ~15 s per backend on 2 cores."""

# Hypothesis compares the global `random` state before and after drawing an example and calls a
# change "random inside strategies". These strategies use none, but the services run in another
# thread, where libraries may draw from the global generator (uvicorn, asyncpg and psycopg do on
# some paths) while the next example is drawn; the check cannot tell the threads apart, and once
# in CI it failed a passing example as flaky. Examples stay deterministic (`derandomize`).
pytestmark = pytest.mark.filterwarnings(
    "ignore:Do not use the `random` module inside strategies"
    ":hypothesis.errors.HypothesisDeprecationWarning"
)

FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES_PER_ROUTE,
    derandomize=True,  # the same examples on every run: a CI failure reproduces locally
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# --- the services ---------------------------------------------------------------------------


@dataclass
class Service:
    """One running service: requests go through the portal, row counts through a sync engine."""

    name: str
    app: FastAPI
    client: httpx.AsyncClient
    portal: BlockingPortal
    engine: sa.Engine
    ids: dict[str, str] = field(default_factory=dict)
    """Known ids by path parameter name (``user_id``, ``policy_id``) for path filling."""

    def send(
        self, method: str, url: str, *, content: bytes | None, headers: Mapping[str, str]
    ) -> httpx.Response:
        request = functools.partial(
            self.client.request, method, url, content=content, headers=dict(headers)
        )
        return self.portal.call(request)

    def counts(self) -> dict[str, int]:
        with self.engine.connect() as connection:
            return {
                table: connection.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()  # noqa: S608 - fixed names
                for table in TABLES[self.name]
            }


@dataclass
class Services:
    """The two running services and the tokens the tests send."""

    users: Service
    policies: Service
    tokens: dict[str, str]
    """Authorization header values by kind: ``user``, ``admin``, ``garbage``."""


def sync_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


NO_SPANS = NoOpTracerProvider()
"""The apps record no spans: span ids come from the global `random`, which Hypothesis watches
while it draws (the apps run in another thread at the same time)."""


@asynccontextmanager
async def running(urls: Mapping[str, str]) -> AsyncIterator[tuple[FastAPI, FastAPI, str]]:
    """user-service on a real socket and policy-service in process, sharing one transport."""
    transport = InMemoryTransport()
    port = free_port()
    users_app = user_service.create_app(
        user_service.Settings(
            port=port,
            database=DatabaseSettings(
                url=SecretStr(urls["users"]), sqlite_transaction_mode="IMMEDIATE"
            ),
            admin_password=SecretStr(ADMIN_PASSWORD),
            policy_service_secret=SECRET,
            log=None,  # the test owns logging
        ),
        transport=transport,
        tracer_provider=NO_SPANS,
    )
    server = uvicorn.Server(uvicorn.Config(users_app, host="127.0.0.1", port=port, log_config=None))
    users_url = f"http://127.0.0.1:{port}"
    async with anyio.create_task_group() as group:
        group.start_soon(server.serve)
        with anyio.fail_after(30):
            while not server.started:  # uvicorn offers no event to await
                await anyio.sleep(0.01)
        policies_app = policy_service.create_app(
            policy_service.Settings(
                database=DatabaseSettings(
                    url=SecretStr(urls["policies"]), sqlite_transaction_mode="IMMEDIATE"
                ),
                users_url=users_url,
                client_secret=SECRET,
                log=None,
            ),
            transport=transport,
            tracer_provider=NO_SPANS,
        )
        try:
            async with policies_app.router.lifespan_context(policies_app):
                yield users_app, policies_app, users_url
        finally:
            server.should_exit = True


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def services(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Services]:
    """Both services with their tables on one backend, a user, a policy, and tokens."""
    tmp = tmp_path_factory.mktemp(f"hostile-{request.param}")
    created: list[str] = []
    server = ""
    if request.param == "sqlite":
        urls = {name: f"sqlite:///{tmp / f'{name}.db'}" for name in TABLES}
    else:
        server = request.getfixturevalue("postgres_url")
        created = [unique_name(f"hostile_{name}") for name in TABLES]
        urls = {
            name: create_database(server, database)
            for name, database in zip(TABLES, created, strict=True)
        }
    history = f"sqlite:///{tmp / 'schema-history.db'}"
    with MigrationCoordinator(SchemaRegistry.load(SCHEMAS), urls, history=history) as schemas:
        schemas.bootstrap()
    engines = {name: sa.create_engine(sync_url(url)) for name, url in urls.items()}
    try:
        with (
            start_blocking_portal() as portal,
            portal.wrap_async_context_manager(running(urls)) as (
                users_app,
                policies_app,
                users_url,
            ),
            portal.wrap_async_context_manager(
                httpx.AsyncClient(base_url=users_url, timeout=30)
            ) as users_client,
            portal.wrap_async_context_manager(
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=policies_app, raise_app_exceptions=False),
                    base_url="http://policies",
                )
            ) as policies_client,
        ):
            users = Service("users", users_app, users_client, portal, engines["users"])
            policies = Service(
                "policies", policies_app, policies_client, portal, engines["policies"]
            )
            yield prepare(users, policies)
    finally:
        for engine in engines.values():
            engine.dispose()
        for database in created:
            drop_database(server, database)


def prepare(users: Service, policies: Service) -> Services:
    """A user with a policy; tokens minted directly (no argon2 per example, no logout effects)."""
    json_headers = {"content-type": "application/json"}
    body = {"email": "kim@example.com", "name": "Kim", "password": PASSWORD}
    created = users.send("POST", "/users", content=json.dumps(body).encode(), headers=json_headers)
    assert created.status_code == 201, created.text
    kim = created.json()["id"]
    login = {"email": "admin@example.com", "password": ADMIN_PASSWORD}
    response = users.send(
        "POST", "/auth/token", content=json.dumps(login).encode(), headers=json_headers
    )
    assert response.status_code == 200, response.text
    issuer = users.app.state.service.tokens
    admin = (
        users.send(
            "GET",
            "/users/me",
            content=None,
            headers={"authorization": f"Bearer {response.json()['access_token']}"},
        )
    ).json()["id"]
    tokens = {
        "user": f"Bearer {issuer.issue_access_token(kim, roles=['user'])}",
        "admin": f"Bearer {issuer.issue_access_token(admin, roles=['admin'])}",
        "garbage": "Bearer not.a.token",
    }
    policy = {"number": "P-1", "premium": "99.90", "starts_on": "2027-01-01"}
    answered = policies.send(
        "POST",
        "/policies",
        content=json.dumps(policy).encode(),
        headers={**json_headers, "authorization": tokens["user"]},
    )
    assert answered.status_code == 201, answered.text
    users.ids = {"user_id": kim}
    policies.ids = {"policy_id": answered.json()["id"]}
    return Services(users, policies, tokens)


# --- what to send ---------------------------------------------------------------------------

EDGE_CHARACTERS = st.sampled_from(
    [
        "\x00",  # PostgreSQL text cannot hold it
        "\ud800",  # lone surrogates: no UTF-8 form
        "\udfff",
        "\u202e",  # right-to-left override
        "\u200f",
        "\ufeff",
        "\u0301",  # a combining mark with nothing to combine with
        "\U0010ffff",
        "\U0001f511",
        "%00",
        "'",
        '"',
        "\\",
        "\r\n",
    ]
)
SURROGATES = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
TEXT = st.one_of(
    st.text(max_size=20),
    st.lists(st.one_of(st.characters(), EDGE_CHARACTERS, SURROGATES), max_size=12).map("".join),
    st.sampled_from(["x" * 20_000, "é" * 2_000 + "\ud800", "a" * 321 + "@example.com"]),
)
NUMBERS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([2**63, 2**63 - 1, -(2**63), -(2**63) - 1, 2**64, 10**40, -1, 0]),
    st.floats(),  # NaN and infinities included: Python's json writes and reads them
    st.sampled_from([1e308, -0.0, 5e-324, 1.5]),
)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, TEXT)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(TEXT, children, max_size=4)
    ),
    max_leaves=10,
)
RAW_BODIES = st.one_of(
    st.integers(min_value=100, max_value=5_000).map(lambda depth: "[" * depth + "]" * depth),
    st.integers(min_value=100, max_value=5_000).map(
        lambda depth: '{"a":' * depth + "1" + "}" * depth
    ),
    st.sampled_from(["", "{", "NaN", '{"email": "\\ud800"', "\ufeff{}", "null"]),
    st.binary(max_size=30).map(lambda raw: raw.decode("latin-1")),
)


def resolve(schema: Mapping[str, Any], components: Mapping[str, Any]) -> Mapping[str, Any]:
    reference = schema.get("$ref")
    if isinstance(reference, str):
        resolved: Mapping[str, Any] = components[reference.rsplit("/", 1)[1]]
        return resolved
    return schema


def plausible(
    schema: Mapping[str, Any], components: Mapping[str, Any], ids: list[str]
) -> st.SearchStrategy[Any]:
    """Values of the field's own type and format, so hostile neighbours get past validation."""
    schema = resolve(schema, components)
    options = schema.get("anyOf") or schema.get("oneOf")
    if options:
        return st.one_of([plausible(option, components, ids) for option in options])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind, form = schema.get("type"), schema.get("format")
    if form == "email":
        return st.sampled_from(["kim@example.com", "admin@example.com", "new@example.com"])
    if form == "uuid":
        return st.sampled_from([*ids, str(uuid.UUID(int=1))])
    if form == "date":
        return st.dates().map(str)
    if kind == "integer":
        return st.integers(min_value=1, max_value=3)
    if kind == "number":
        return st.sampled_from(["99.90", "0.01", "1e3", 12.5])
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    return st.sampled_from([PASSWORD, "Kim", "P-2", "created_at"])


NAMED = {
    "email": st.sampled_from(["kim@example.com", "admin@example.com", "new@example.com"]),
    "password": st.sampled_from([PASSWORD, ADMIN_PASSWORD, "Another-Passw0rd-42"]),
    "name": st.sampled_from(["Kim", "Bo"]),
    "number": st.sampled_from(["P-1", "P-2"]),
}
"""Plausible values of untyped text fields by name: a valid login, a fresh policy number."""

HOSTILE = st.one_of(
    st.sampled_from(
        ["\ud800", 2**63, "a\x00b", -(2**63) - 1, PASSWORD + "\udfff", "kim@example.com\x00"]
    ),
    TEXT,
    NUMBERS,
    JSON_VALUES,
)
"""A value that should be refused wherever it goes."""


@st.composite
def shaped_object(
    draw: st.DrawFn,
    schema: Mapping[str, Any],
    components: Mapping[str, Any],
    ids: list[str],
) -> dict[str, Any]:
    """A valid-looking body with one or two fields (or an extra one) made hostile."""
    properties: Mapping[str, Any] = resolve(schema, components).get("properties", {})
    body = {
        name: draw(NAMED[name] if name in NAMED else plausible(spec, components, ids))
        for name, spec in properties.items()
        if draw(st.integers(0, 4)) != 4  # mostly present: the hostile value must get through
    }
    names = sorted(properties) or ["value"]
    for name in draw(st.lists(st.sampled_from(names), min_size=1, max_size=2, unique=True)):
        body[name] = draw(HOSTILE)
    if draw(st.integers(0, 5)) == 5:
        body[draw(TEXT)] = draw(HOSTILE)
    return body


def body_strategy(
    schema: Mapping[str, Any] | None, components: Mapping[str, Any], ids: list[str]
) -> st.SearchStrategy[str]:
    """A JSON text: a schema-shaped object with hostile values, any JSON value, or raw text."""
    values: st.SearchStrategy[Any] = JSON_VALUES
    if schema is not None:
        shaped = shaped_object(schema, components, ids)
        values = st.one_of(shaped, shaped, shaped, JSON_VALUES)
    # ensure_ascii writes a lone surrogate as the JSON escape a hostile client would send.
    encoded = values.map(lambda value: json.dumps(value, allow_nan=True))
    return st.one_of(encoded, encoded, encoded, RAW_BODIES)


def url_text(value: Any) -> str:
    """A path segment or query value percent-encoded; surrogates as their (invalid) UTF-8 bytes."""
    text = value if isinstance(value, str) else json.dumps(value, allow_nan=True)
    # httpx refuses URLs over 64 KiB; a cut escape ("%E") is one more malformed input.
    return quote(text, safe="", errors="surrogatepass")[:8_000]


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    parameters: tuple[str, ...]
    query: Mapping[str, Mapping[str, Any]]
    body: Mapping[str, Any] | None
    takes_body: bool


def endpoints(app: FastAPI) -> list[Endpoint]:
    """Every method of every route of ``app``, with its OpenAPI body and query schemas."""
    openapi = app.openapi()
    found = []
    for route in app.router.routes:
        if not isinstance(route, Route) or not route.methods:
            continue
        for method in sorted(route.methods - {"HEAD"}):
            operation = openapi["paths"].get(route.path, {}).get(method.lower(), {})
            content = operation.get("requestBody", {}).get("content", {})
            query = {
                p["name"]: p.get("schema", {})
                for p in operation.get("parameters", [])
                if p["in"] == "query"
            }
            found.append(
                Endpoint(
                    method,
                    route.path,
                    tuple(route.param_convertors),
                    query,
                    content.get("application/json", {}).get("schema"),
                    method in {"POST", "PUT", "PATCH", "DELETE"},
                )
            )
    return found


def endpoint_ids() -> list[str]:
    """Test ids, from apps built without starting them (the routes do not depend on settings)."""
    apps = {
        "users": user_service.create_app(
            user_service.Settings(policy_service_secret=SECRET, log=None),
            transport=InMemoryTransport(),
        ),
        "policies": policy_service.create_app(
            policy_service.Settings(client_secret=SECRET, log=None),
            transport=InMemoryTransport(),
        ),
    }
    return [f"{name} {e.method} {e.path}" for name, app in apps.items() for e in endpoints(app)]


ENDPOINTS = endpoint_ids()


# --- the properties -------------------------------------------------------------------------


def check_answer(
    service: Service, before: dict[str, int], response: httpx.Response, sent: str
) -> None:
    status = response.status_code
    assert status < 500, f"{sent}\n-> {status} {response.text[:500]}"
    if status >= 400:
        assert response.headers.get("content-type") == PROBLEM, f"{sent}\n-> {response.headers}"
        body = response.json()
        assert body["status"] == status
        assert service.counts() == before, f"{sent}\n-> {status} but a table changed"


# A failing example with a 20 000-character value is worth reporting even if its repr is large.
@pytest.mark.filterwarnings(
    "ignore:Generating overly large repr:hypothesis.errors.HypothesisWarning"
)
@pytest.mark.parametrize("endpoint_id", ENDPOINTS)
def test_no_client_input_gets_a_5xx_or_writes_when_refused(
    services: Services, endpoint_id: str
) -> None:
    name, method, path = endpoint_id.split(" ", 2)
    service: Service = getattr(services, name)
    endpoint = next(e for e in endpoints(service.app) if (e.method, e.path) == (method, path))
    components = service.app.openapi().get("components", {}).get("schemas", {})
    by_name = services.users.ids | services.policies.ids
    ids = list(by_name.values())
    other = st.sampled_from([*ids, str(uuid.UUID(int=7))])

    def segment(parameter: str) -> st.SearchStrategy[str]:
        own = st.just(by_name.get(parameter, ids[0]))
        return st.one_of(own, own, own, other, TEXT, NUMBERS).map(url_text)

    query_values = {
        key: st.one_of(plausible(spec, components, ids), HOSTILE).map(url_text)
        for key, spec in endpoint.query.items()
    }
    query = st.fixed_dictionaries({}, optional=query_values)
    bodies = body_strategy(endpoint.body, components, ids) if endpoint.takes_body else st.none()
    auth = st.sampled_from(["user", "admin", "user", "admin", "none", "garbage"])

    @FUZZ_SETTINGS
    @given(
        segments=st.tuples(*[segment(parameter) for parameter in endpoint.parameters]),
        query=query,
        body=bodies,
        who=auth,
        content_type=st.sampled_from(["application/json", "application/json", "text/plain"]),
    )
    def check(
        segments: tuple[str, ...],
        query: dict[str, str],
        body: str | None,
        who: str,
        content_type: str,
    ) -> None:
        url = endpoint.path
        for parameter, value in zip(endpoint.parameters, segments, strict=True):
            url = url.replace(f"{{{parameter}}}", value)
        if query:
            url += "?" + "&".join(f"{key}={value}" for key, value in query.items())
        headers = {"content-type": content_type}
        if who != "none":
            headers["authorization"] = services.tokens[who]
        content = None if body is None else body.encode("utf-8", "surrogatepass")
        sent = f"{endpoint.method} {url} as {who}: {content[:300] if content else content!r}"
        before = service.counts()
        check_answer(
            service,
            before,
            service.send(endpoint.method, url, content=content, headers=headers),
            sent,
        )

    check()


TARGETED: list[Any] = [
    "\ud800",
    "tail \udfff",
    "a\x00b",
    2**63,
    -(2**63) - 1,
    10**40,
    float("nan"),
    float("-inf"),
    -1.5,
    "x" * 20_000,
    "\u202e\U0010ffff\u0301",
    True,
    None,
    [],
    {"a": [{"b": []}]},
]
"""Each of these goes into every field, query parameter and path parameter, one at a time."""

TYPICAL = {
    "email": "kim@example.com",
    "password": PASSWORD,
    "name": "Kim",
    "number": "P-9",
    "refresh_token": "not-a-token",
}


def typical(
    name: str, schema: Mapping[str, Any], components: Mapping[str, Any], ids: Mapping[str, str]
) -> Any:
    """A valid value for a field, so that the one hostile neighbour is what gets judged."""
    schema = resolve(schema, components)
    if name in TYPICAL:
        return TYPICAL[name]
    options = schema.get("anyOf") or schema.get("oneOf")
    if options:
        return typical(name, options[0], components, ids)
    values = {"integer": 1, "number": "99.90", "boolean": False}
    by_format = {"date": "2027-01-01", "uuid": ids.get("user_id")}
    return (
        schema.get("enum", [None])[0]
        or by_format.get(schema.get("format", ""))
        or values.get(schema.get("type", ""), "P-9")
    )


@pytest.mark.parametrize("endpoint_id", ENDPOINTS)
def test_every_field_and_parameter_of_every_route_refuses_each_hostile_value(
    services: Services, endpoint_id: str
) -> None:
    """The systematic half of the fuzzing: every hostile value in every slot, as user and admin."""
    name, method, path = endpoint_id.split(" ", 2)
    service: Service = getattr(services, name)
    endpoint = next(e for e in endpoints(service.app) if (e.method, e.path) == (method, path))
    components = service.app.openapi().get("components", {}).get("schemas", {})
    ids = services.users.ids | services.policies.ids
    properties = resolve(endpoint.body, components).get("properties", {}) if endpoint.body else {}
    body = {key: typical(key, spec, components, ids) for key, spec in properties.items()}
    filled = dict.fromkeys(endpoint.parameters, "") | {
        k: ids[k] for k in endpoint.parameters if k in ids
    }
    cases: list[tuple[dict[str, str], dict[str, Any], dict[str, str]]] = []
    for value in TARGETED:
        cases += [(filled, body | {key: value}, {}) for key in properties]
        cases += [(filled, body, {key: url_text(value)}) for key in endpoint.query]
        cases += [(filled | {key: url_text(value)}, body, {}) for key in endpoint.parameters]
    for who in ("user", "admin"):
        headers = {"content-type": "application/json", "authorization": services.tokens[who]}
        for segments, sent_body, query in cases:
            url = endpoint.path
            for parameter, segment in segments.items():
                url = url.replace(f"{{{parameter}}}", segment)
            if query:
                url += "?" + "&".join(f"{key}={value}" for key, value in query.items())
            text = json.dumps(sent_body, allow_nan=True) if endpoint.takes_body else None
            content = None if text is None else text.encode()
            before = service.counts()
            response = service.send(endpoint.method, url, content=content, headers=headers)
            check_answer(service, before, response, f"{method} {url} as {who}: {text!r:.300}")


# --- the cases the fuzzing found, pinned ----------------------------------------------------


def post_json(service: Service, path: str, text: str, token: str | None = None) -> httpx.Response:
    headers = {"content-type": "application/json"}
    if token is not None:
        headers["authorization"] = token
    return service.send(
        "POST" if token is None else "PATCH", path, content=text.encode(), headers=headers
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ('{"email": "kim@example.com", "password": "\\ud800"}', "password"),
        ('{"email": "kim\\ud800@example.com", "password": "x"}', "email"),
        ('{"email": "kim@example.com\\u0000", "password": "x"}', "email"),
    ],
    ids=["surrogate-password", "surrogate-email", "nul-email"],
)
def test_login_with_text_no_database_or_hash_takes_is_a_422_naming_the_field(
    services: Services, body: str, field: str
) -> None:
    """Was a 500 on both backends (password) and on SQLite (email)."""
    response = post_json(services.users, "/auth/token", body)
    assert (response.status_code, response.headers["content-type"]) == (422, PROBLEM)
    assert [error["field"] for error in response.json()["errors"]] == [field]


@pytest.mark.parametrize("version", ["9223372036854775808", "-9223372036854775809", "1e30"])
def test_a_version_beyond_64_bits_is_a_422_naming_the_field(
    services: Services, version: str
) -> None:
    """Was a 500 on SQLite (OverflowError) for user-service; policy-service alike."""
    for service, kind in ((services.users, "user_id"), (services.policies, "policy_id")):
        before = service.counts()
        path = f"/{service.name}/{service.ids[kind]}"
        response = post_json(service, path, f'{{"version": {version}}}', services.tokens["admin"])
        assert (response.status_code, response.headers["content-type"]) == (422, PROBLEM)
        assert [error["field"] for error in response.json()["errors"]] == ["version"]
        assert service.counts() == before


def test_text_fields_refuse_surrogates_and_nul_at_registration_and_policy_creation(
    services: Services,
) -> None:
    user = '{"email": "new@example.com", "name": "N\\u0000", "password": "Correct-Horse-9\\ud800"}'
    response = post_json(services.users, "/users", user)
    assert response.status_code == 422
    assert {error["field"] for error in response.json()["errors"]} == {"name", "password"}
    policy = '{"number": "P-\\ud800", "premium": "1.00", "starts_on": "2027-01-01"}'
    headers = {"content-type": "application/json", "authorization": services.tokens["user"]}
    answered = services.policies.send("POST", "/policies", content=policy.encode(), headers=headers)
    assert answered.status_code == 422
    assert [error["field"] for error in answered.json()["errors"]] == ["number"]

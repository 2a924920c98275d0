"""The AsyncAPI 3.0 document: valid against the official schema, resolvable, true to the wire."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import httpx
import jsonschema  # type: ignore[import-untyped]  # no type hints, no stubs installed
import pytest
import yaml
from pydantic import BaseModel, Field
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7
from starlette.applications import Starlette
from starlette.routing import Route

from aegis.core.errors import ConfigurationError
from aegis.msg import (
    AsyncAPI,
    Event,
    EventPublisher,
    EventRegistry,
    EventSubscriber,
    InMemoryTransport,
    KafkaSettings,
    KafkaTransport,
)
from aegis.msg._asyncapi_cli import main

pytestmark = pytest.mark.anyio

HERE = Path(__file__).resolve().parent
ASYNCAPI_SCHEMA = json.loads((HERE / "data" / "asyncapi-3.0.0.schema.json").read_text())
README = (HERE.parent / "README.md").read_text()


class Plan(StrEnum):
    FREE = "free"
    PRO = "pro"


class Address(BaseModel):
    city: str
    postcode: str | None = None


class Card(BaseModel):
    kind: Literal["card"] = "card"
    last4: str


class Iban(BaseModel):
    kind: Literal["iban"] = "iban"
    iban: str


class UserCreatedData(BaseModel):
    user_id: str
    email: str
    plan: Plan = Plan.FREE
    addresses: list[Address] = []
    payment: Annotated[Card | Iban, Field(discriminator="kind")] | None = None


class UserCreated(Event[UserCreatedData]):
    """A user registered."""

    type = "test.user.created"
    version = 2
    topic = "users"
    key_field = "user_id"


class UserDeletedData(BaseModel):
    user_id: str


class UserDeleted(Event[UserDeletedData]):
    type = "test.user.deleted"
    topic = "users"
    key_field = "user_id"
    dataschema = "https://schemas.example.com/user-deleted/1"


class Scores(Event[dict[str, int]]):
    type = "test.scores"
    topic = "scores"


def scoped_item(field_type: type[Any]) -> type[BaseModel]:
    class Item(BaseModel):  # the same class name twice: pydantic must keep them apart
        value: field_type  # type: ignore[valid-type]

    return Item


NumberItem = scoped_item(int)
TextItem = scoped_item(str)


class NumbersData(BaseModel):
    items: list[NumberItem]  # type: ignore[valid-type]


class TextsData(BaseModel):
    items: list[TextItem]  # type: ignore[valid-type]


class Numbers(Event[NumbersData]):
    type = "test.numbers"
    topic = "items"


class Texts(Event[TextsData]):
    type = "test.texts"
    topic = "items"


async def handle(event: Any) -> None:
    """A handler that does nothing."""


def service(transport: InMemoryTransport | None = None, **options: Any) -> AsyncAPI:
    """A service publishing in both modes, with two consumer groups."""
    transport = transport or InMemoryTransport()
    registry = EventRegistry()
    binary = EventPublisher(transport, source="users", registry=registry)
    structured = EventPublisher(transport, source="users", registry=registry, mode="structured")
    policies = EventSubscriber(transport, group_id="policies", registry=registry)
    audit = EventSubscriber(transport, group_id="audit", registry=registry)
    policies.on(UserCreated)(handle)
    policies.on(UserCreated, topic="users-structured")(handle)
    audit.on(UserCreated)(handle)
    audit.on(UserDeleted)(handle)
    audit.on(Numbers)(handle)
    asyncapi = AsyncAPI(title="user-service", version="1.4.0", **options)
    asyncapi.publisher(binary, UserCreated, UserDeleted, Scores, Numbers, Texts)
    asyncapi.publisher(structured, UserCreated, topic="users-structured")
    asyncapi.subscriber(policies)
    asyncapi.subscriber(audit)
    return asyncapi


def refs(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "$ref":
                yield item
            else:
                yield from refs(item)
    elif isinstance(value, list):
        for item in value:
            yield from refs(item)


def resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    target: Any = document
    for part in ref[2:].split("/"):
        target = target[part.replace("~1", "/").replace("~0", "~")]
    return target


def schema_validator(document: dict[str, Any], pointer: str) -> jsonschema.Draft7Validator:
    """A validator for the schema at ``pointer``, resolving its refs inside the document."""
    registry: Registry[Any] = Registry().with_resource(
        "urn:asyncapi", Resource.from_contents(document, default_specification=DRAFT7)
    )
    return jsonschema.Draft7Validator({"$ref": f"urn:asyncapi{pointer}"}, registry=registry)


def test_document_is_valid_asyncapi_3() -> None:
    settings = KafkaSettings(
        bootstrap_servers="kafka-1:9092,kafka-2:9093",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
    )
    document = service(kafka=settings, description="Users and their events.").document()
    jsonschema.Draft7Validator.check_schema(ASYNCAPI_SCHEMA)
    validator = jsonschema.Draft7Validator(
        ASYNCAPI_SCHEMA, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER
    )
    assert [error.message for error in validator.iter_errors(document)] == []
    assert document["asyncapi"] == "3.0.0"
    assert document["info"] == {
        "title": "user-service",
        "version": "1.4.0",
        "description": "Users and their events.",
    }


def test_a_service_without_events_has_an_empty_valid_document() -> None:
    document = AsyncAPI(title="quiet", version="0.1.0").document()
    assert document["channels"] == {}
    assert document["operations"] == {}
    assert document["components"] == {"messages": {}, "schemas": {}}
    assert jsonschema.Draft7Validator(ASYNCAPI_SCHEMA).is_valid(document)


def test_every_ref_resolves_inside_the_document() -> None:
    document = service(
        kafka=KafkaSettings(security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN")
    ).document()
    found = list(refs(document))
    assert len(found) > 20
    for ref in found:
        resolve(document, ref)
    assert "$defs" not in json.dumps(document)


def test_channels_are_topics_with_the_messages_sent_and_received_there() -> None:
    document = service().document()
    channels = document["channels"]
    assert sorted(channels) == ["items", "scores", "users", "users-structured"]
    assert channels["users"] == {
        "address": "users",
        "messages": {
            "test.user.created": {"$ref": "#/components/messages/test.user.created"},
            "test.user.deleted": {"$ref": "#/components/messages/test.user.deleted"},
        },
    }
    assert channels["users-structured"]["messages"] == {
        "test.user.created.structured": {
            "$ref": "#/components/messages/test.user.created.structured"
        },
        "test.user.created": {"$ref": "#/components/messages/test.user.created"},
    }


def test_operations_send_for_publishers_and_receive_per_consumer_group() -> None:
    operations = service().document()["operations"]
    assert sorted(operations) == [
        "receive-items-audit",
        "receive-users-audit",
        "receive-users-policies",
        "receive-users-structured-policies",
        "send-items",
        "send-scores",
        "send-users",
        "send-users-structured",
    ]
    send = operations["send-users"]
    assert send["action"] == "send"
    assert send["channel"] == {"$ref": "#/channels/users"}
    assert send["messages"] == [
        {"$ref": "#/channels/users/messages/test.user.created"},
        {"$ref": "#/channels/users/messages/test.user.deleted"},
    ]
    receive = operations["receive-users-audit"]
    assert receive["action"] == "receive"
    assert receive["bindings"] == {
        "kafka": {"groupId": {"type": "string", "const": "audit"}, "bindingVersion": "0.5.0"}
    }
    assert receive["description"] == f"Handlers: `{__name__}.handle`."
    policies = operations["receive-users-policies"]["messages"]
    assert policies == [{"$ref": "#/channels/users/messages/test.user.created"}]
    # A subscriber reads both content modes: it names the structured message sent there too.
    both = operations["receive-users-structured-policies"]["messages"]
    assert both == [
        {"$ref": "#/channels/users-structured/messages/test.user.created"},
        {"$ref": "#/channels/users-structured/messages/test.user.created.structured"},
    ]


def test_messages_carry_cloudevents_headers_and_the_partition_key() -> None:
    messages = service().document()["components"]["messages"]
    created = messages["test.user.created"]
    assert created["name"] == "test.user.created"
    assert created["title"] == "UserCreated"
    assert created["summary"] == "A user registered."
    assert created["contentType"] == "application/json"
    assert created["payload"] == {"$ref": "#/components/schemas/UserCreatedData"}
    headers = created["headers"]["properties"]
    assert headers["ce_type"] == {"type": "string", "const": "test.user.created"}
    assert headers["ce_schemaversion"] == {"type": "string", "const": "2"}
    assert headers["ce_specversion"] == {"type": "string", "const": "1.0"}
    assert "ce_dataschema" not in headers
    assert created["correlationId"] == {"location": "$message.header#/ce_correlationid"}
    key = created["bindings"]["kafka"]["key"]
    assert key["type"] == "string"
    assert "data.user_id" in key["description"]
    deleted = messages["test.user.deleted"]["headers"]["properties"]
    assert deleted["ce_dataschema"]["const"] == "https://schemas.example.com/user-deleted/1"
    assert messages["test.scores"]["bindings"]["kafka"]["key"]["type"] == ["string", "null"]
    structured = messages["test.user.created.structured"]
    assert structured["contentType"] == "application/cloudevents+json"
    assert structured["payload"] == {"$ref": "#/components/schemas/UserCreated"}
    assert structured["correlationId"] == {"location": "$message.payload#/correlationid"}


def test_schemas_hold_each_events_data_with_pydantic_definitions_hoisted() -> None:
    schemas = service().document()["components"]["schemas"]
    data = schemas["UserCreatedData"]
    assert data["properties"]["addresses"]["items"] == {"$ref": "#/components/schemas/Address"}
    assert data["properties"]["plan"]["$ref"] == "#/components/schemas/Plan"
    assert schemas["Plan"]["enum"] == ["free", "pro"]
    payment = data["properties"]["payment"]["anyOf"][0]
    assert payment["discriminator"] == "kind"  # AsyncAPI's form, not OpenAPI's object
    # Data that is not a model gets a schema of its own under the event's name.
    assert schemas["ScoresData"] == {"type": "object", "additionalProperties": {"type": "integer"}}
    # Two different classes named Item: two schemas, each event pointing at its own.
    numbers = resolve({"components": {"schemas": schemas}}, "#/components/schemas/NumbersData")
    texts = resolve({"components": {"schemas": schemas}}, "#/components/schemas/TextsData")
    number_item = numbers["properties"]["items"]["items"]["$ref"]
    text_item = texts["properties"]["items"]["items"]["$ref"]
    assert number_item != text_item
    document = {"components": {"schemas": schemas}}
    assert resolve(document, number_item)["properties"]["value"]["type"] == "integer"
    assert resolve(document, text_item)["properties"]["value"]["type"] == "string"
    envelope = schemas["UserCreated"]["properties"]
    assert envelope["type"] == {"const": "test.user.created", "type": "string"}
    assert envelope["data"] == {"$ref": "#/components/schemas/UserCreatedData"}


def test_a_data_schema_name_never_overwrites_a_model_of_that_name() -> None:
    class BatchData(BaseModel):
        size: int

    class Batch(Event[list[BatchData]]):
        type = "test.batch"
        topic = "batches"

    asyncapi = AsyncAPI(title="svc", version="1")
    asyncapi.publisher(EventPublisher(InMemoryTransport(), registry=EventRegistry()), Batch)
    document = asyncapi.document()
    schemas = document["components"]["schemas"]
    assert schemas["BatchData"]["properties"] == {"size": {"title": "Size", "type": "integer"}}
    assert schemas["BatchData2"] == {
        "type": "array",
        "items": {"$ref": "#/components/schemas/BatchData"},
    }
    payload = document["components"]["messages"]["test.batch"]["payload"]
    assert payload == {"$ref": "#/components/schemas/BatchData2"}


async def test_published_records_match_their_message_schemas() -> None:
    transport = InMemoryTransport()
    asyncapi = service(transport)
    document = asyncapi.document()
    binary, structured = asyncapi._publishers
    event = UserCreated(
        data=UserCreatedData(user_id="u-1", email="kim@example.com", payment=Card(last4="4242")),
        subject="u-1",
    )
    await binary.publish(event)
    await structured.publish(event, topic="users-structured")
    for topic, message_id in [
        ("users", "test.user.created"),
        ("users-structured", "test.user.created.structured"),
    ]:
        (record,) = transport.messages(topic)
        pointer = f"#/components/messages/{message_id}"
        headers = {name: value.decode() for name, value in record.header_list}
        schema_validator(document, f"{pointer}/headers").validate(headers)
        schema_validator(document, f"{pointer}/payload").validate(json.loads(record.value()))
        key = record.key()
        assert key is not None
        schema_validator(document, f"{pointer}/bindings/kafka/key").validate(key.decode())
    mismatch = schema_validator(document, "#/components/messages/test.user.deleted/headers")
    assert not mismatch.is_valid(headers)  # the ce_type constant tells the messages apart


async def test_types_published_but_not_declared_are_listed_too() -> None:
    transport = InMemoryTransport()
    publisher = EventPublisher(transport, source="users", registry=EventRegistry())
    asyncapi = AsyncAPI(title="user-service", version="1")
    asyncapi.publisher(publisher)
    assert asyncapi.document()["channels"] == {}
    await publisher.publish(UserDeleted(data=UserDeletedData(user_id="u-1")))
    document = asyncapi.document()
    assert list(document["channels"]) == ["users"]
    assert document["operations"]["send-users"]["messages"] == [
        {"$ref": "#/channels/users/messages/test.user.deleted"}
    ]


def test_handlers_registered_after_declaring_the_subscriber_are_included() -> None:
    subscriber = EventSubscriber(InMemoryTransport(), group_id="late", registry=EventRegistry())
    asyncapi = AsyncAPI(title="svc", version="1")
    asyncapi.subscriber(subscriber)
    asyncapi.subscriber(subscriber)  # declaring twice changes nothing
    subscriber.on(UserDeleted, topic="deletions")(handle)
    assert list(asyncapi.document()["operations"]) == ["receive-deletions-late"]


def test_servers_come_from_the_kafka_transport_unless_given() -> None:
    transport = KafkaTransport(KafkaSettings(bootstrap_servers="PLAINTEXT://broker:9092"))
    subscriber = EventSubscriber(transport, group_id="g", registry=EventRegistry())
    subscriber.on(UserCreated)(handle)
    asyncapi = AsyncAPI(title="svc", version="1")
    asyncapi.subscriber(subscriber)
    document = asyncapi.document()
    assert document["servers"] == {"kafka": {"host": "broker:9092", "protocol": "kafka"}}
    assert "securitySchemes" not in document["components"]
    secure = KafkaSettings(bootstrap_servers="b:9093", security_protocol="SSL")
    asyncapi.kafka = secure
    assert asyncapi.document()["servers"]["kafka"]["protocol"] == "kafka-secure"
    in_memory = service().document()
    assert "servers" not in in_memory


def test_sasl_settings_become_a_security_scheme() -> None:
    settings = KafkaSettings(
        bootstrap_servers="b1:9092,b2:9092",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-256",
    )
    document = service(kafka=settings).document()
    assert document["components"]["securitySchemes"] == {"kafka-sasl": {"type": "scramSha256"}}
    assert document["servers"]["kafka-2"] == {
        "host": "b2:9092",
        "protocol": "kafka-secure",
        "security": [{"$ref": "#/components/securitySchemes/kafka-sasl"}],
    }


def test_an_event_without_a_topic_is_refused_when_declared() -> None:
    class Topicless(Event[UserDeletedData]):
        type = "test.topicless"

    publisher = EventPublisher(InMemoryTransport(), registry=EventRegistry())
    asyncapi = AsyncAPI(title="svc", version="1")
    with pytest.raises(ConfigurationError, match="no topic for Topicless"):
        asyncapi.publisher(publisher, Topicless)
    asyncapi.publisher(publisher, Topicless, topic="elsewhere")
    assert list(asyncapi.document()["channels"]) == ["elsewhere"]


def test_two_classes_with_one_event_type_are_refused() -> None:
    class Impostor(Event[UserDeletedData]):
        type = "test.user.deleted"
        topic = "users"

    publisher = EventPublisher(InMemoryTransport(), registry=EventRegistry())
    asyncapi = AsyncAPI(title="svc", version="1")
    asyncapi.publisher(publisher, UserDeleted, Impostor)
    with pytest.raises(ConfigurationError, match=r"declared by both UserDeleted and .*Impostor"):
        asyncapi.document()


def test_json_and_yaml_texts_hold_the_same_document(tmp_path: Path) -> None:
    asyncapi = service(kafka=KafkaSettings())
    document = asyncapi.document()
    assert json.loads(asyncapi.to_json()) == document
    assert yaml.safe_load(asyncapi.to_yaml()) == document
    asyncapi.write(tmp_path / "asyncapi.yaml")
    asyncapi.write(tmp_path / "asyncapi.json")
    assert yaml.safe_load((tmp_path / "asyncapi.yaml").read_text()) == document
    assert json.loads((tmp_path / "asyncapi.json").read_text()) == document


async def test_routes_serve_the_document_as_json_and_yaml() -> None:
    asyncapi = service()
    app = Starlette(
        routes=[
            Route("/asyncapi.json", asyncapi.app()),
            Route("/asyncapi.yaml", asyncapi.app("yaml")),
        ]
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app), base_url="http://test"
    ) as client:
        response = await client.get("/asyncapi.json")
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json; charset=utf-8"
        assert response.json() == asyncapi.document()
        response = await client.get("/asyncapi.yaml")
        assert response.headers["content-type"] == "application/yaml; charset=utf-8"
        assert yaml.safe_load(response.text) == asyncapi.document()
        head = await client.head("/asyncapi.json")
        assert head.status_code == 200
        assert head.content == b""
        assert int(head.headers["content-length"]) == len(asyncapi.to_json().encode())
        refused = await client.post("/asyncapi.json")
        assert refused.status_code == 405
        assert refused.headers["allow"] == "GET, HEAD"


async def test_the_app_ignores_scopes_other_than_http() -> None:
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        raise AssertionError("not read")

    async def send(message: Any) -> None:
        sent.append(message)

    await service().app()({"type": "lifespan"}, receive, send)
    assert sent == []


SERVICE_MODULE = """
from pydantic import BaseModel

from aegis.msg import AsyncAPI, Event, EventPublisher, EventRegistry, InMemoryTransport


class OrderPlacedData(BaseModel):
    order_id: str


class OrderPlaced(Event[OrderPlacedData]):
    type = "cli.order.placed"
    topic = "orders"


publisher = EventPublisher(InMemoryTransport(), registry=EventRegistry())
asyncapi = AsyncAPI(title="cli-service", version="2.0.0")
asyncapi.publisher(publisher, OrderPlaced)
not_asyncapi = 42
"""

TWIN_EVENT = """

class Twin(Event[dict[str, int]]):
    type = "cli.order.placed"
    topic = "orders"


asyncapi.publisher(publisher, Twin)
"""


@pytest.fixture
def service_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A service's module, cli_service, in the current directory."""
    (tmp_path / "cli_service.py").write_text(SERVICE_MODULE)
    (tmp_path / "twin_service.py").write_text(SERVICE_MODULE + TWIN_EVENT)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))  # main() adds the current directory
    for name in ("cli_service", "twin_service"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    return tmp_path


def test_command_line_writes_the_document_to_a_file(
    service_module: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["cli_service:asyncapi", "-o", "asyncapi.yaml"]) == 0
    document = yaml.safe_load((service_module / "asyncapi.yaml").read_text())
    assert document["info"] == {"title": "cli-service", "version": "2.0.0"}
    assert main(["cli_service:asyncapi"]) == 0
    assert json.loads(capsys.readouterr().out)["info"]["title"] == "cli-service"


def test_command_line_reports_a_target_it_cannot_use(
    service_module: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["cli_service:missing"]) == 1
    assert "cannot load 'cli_service:missing'" in capsys.readouterr().err
    assert main(["cli_service:not_asyncapi"]) == 1
    assert "is not an aegis.msg.AsyncAPI" in capsys.readouterr().err


def test_command_line_reports_a_configuration_error(
    service_module: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["twin_service:asyncapi", "-o", "asyncapi.json"]) == 1
    assert "declared by both OrderPlaced and Twin" in capsys.readouterr().err
    assert not (service_module / "asyncapi.json").exists()


def test_module_runs_as_a_program(service_module: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "aegis.msg._asyncapi_cli", "cli_service:asyncapi"],
        capture_output=True,
        text=True,
        check=True,
        cwd=service_module,
    )
    assert json.loads(result.stdout)["asyncapi"] == "3.0.0"


def test_readme_example_builds_a_valid_document() -> None:
    section = README.split("## AsyncAPI document\n", 1)[1]
    code = re.findall(r"```python\n(.*?)```", section, re.DOTALL)[0]
    namespace: dict[str, Any] = {}
    exec(code, namespace)  # noqa: S102 - the README's own code
    document = namespace["asyncapi"].document()
    validator = jsonschema.Draft7Validator(ASYNCAPI_SCHEMA)
    assert [error.message for error in validator.iter_errors(document)] == []

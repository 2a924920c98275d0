"""Event models, the registry with upcasters and JSON Schema, and the CloudEvents codec."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from aegis.core.errors import ConfigurationError
from aegis.msg import (
    Event,
    EventCodec,
    EventRegistry,
    InvalidEventError,
    StoredMessage,
    UnsupportedVersionError,
    default_registry,
    event_json_schema,
    new_event_id,
)
from aegis.msg._wire import Run


class AccountData(BaseModel):
    account_id: int
    owner: str


class AccountOpened(Event[AccountData]):
    type = "test.account.opened"
    version = 3
    topic = "accounts"
    key_field = "account_id"
    dataschema = "https://schemas.example.com/account-opened/3"


class Nameless(Event[AccountData]):
    pass


class Counted(Event[int]):
    type = "test.counted"


def opened(**envelope: Any) -> AccountOpened:
    return AccountOpened(data=AccountData(account_id=7, owner="kim"), **envelope)


def message(
    headers: list[tuple[str, bytes]], value: bytes | str | None, key: bytes | None = None
) -> Any:
    return StoredMessage("t", 0, 0, key, value, headers)  # type: ignore[arg-type]


def test_event_ids_are_uuid7_strings_that_increase_in_creation_order() -> None:
    ids = [new_event_id() for _ in range(3000)]
    assert uuid.UUID(ids[0]).version == 7
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert opened().id != opened().id


def test_event_time_is_utc_and_a_naive_time_is_refused() -> None:
    seoul = timezone(timedelta(hours=9))
    event = opened(time=datetime(2026, 1, 2, 12, 0, tzinfo=seoul))
    assert event.time == datetime(2026, 1, 2, 3, 0, tzinfo=UTC)
    assert event.time.utcoffset() == timedelta(0)
    with pytest.raises(ValidationError, match="must carry a time zone"):
        opened(time=datetime(2026, 1, 2, 12, 0))
    codec = EventCodec(EventRegistry(), source="accounts-svc", mode="structured")
    unvalidated = event.model_copy(update={"time": datetime(2026, 1, 2, 3, 4, 5)})
    records = codec.records([event, unvalidated], lambda _: "accounts")
    assert [json.loads(record.value)["time"] for record in records] == [
        "2026-01-02T03:00:00.000000Z",
        "2026-01-02T03:04:05.000000Z",
    ]


def test_class_attributes_form_the_constant_part_of_the_envelope() -> None:
    event = opened(partitionkey=None)
    assert (event.type, event.specversion, event.schemaversion) == (
        "test.account.opened",
        "1.0",
        "3",
    )
    assert event.message_key() == "7"
    assert opened(partitionkey="p").message_key() == "p"
    assert Counted(data=1).message_key() is None


def test_registry_refuses_a_class_without_type_and_a_type_taken_twice() -> None:
    registry = EventRegistry()
    with pytest.raises(ConfigurationError, match="has no CloudEvents type"):
        registry.register(Nameless)

    class Impostor(Event[int]):
        type = "test.account.opened"

    registry.register(AccountOpened)
    registry.register(AccountOpened)  # again: a no-op
    with pytest.raises(ConfigurationError, match="already registered by AccountOpened"):
        registry.register(Impostor)
    assert "test.account.opened" in registry
    assert list(registry) == [AccountOpened]
    assert default_registry() is default_registry()


def test_upcasters_must_step_from_an_older_version_once() -> None:
    registry = EventRegistry()
    with pytest.raises(ConfigurationError, match=r"from_version must be 1\.\.2"):
        registry.upcaster(AccountOpened, from_version=3)
    registry.upcaster(AccountOpened, from_version=2)(lambda data: data)
    with pytest.raises(ConfigurationError, match="already has an upcaster from version 2"):
        registry.upcaster(AccountOpened, from_version=2)(lambda data: data)
    with pytest.raises(
        ConfigurationError, match=r"no upcaster for 'test\.account\.opened' from version 1"
    ):
        registry.upcast("test.account.opened", 1, {})


def test_json_schema_of_each_event_names_its_constants() -> None:
    registry = EventRegistry()
    registry.register(AccountOpened)
    registry.register(Counted)
    schemas = registry.json_schemas()
    assert list(schemas) == ["test.account.opened", "test.counted"]
    schema = schemas["test.account.opened"]
    assert schema == event_json_schema(AccountOpened)
    assert schema["properties"]["type"] == {"const": "test.account.opened", "type": "string"}
    assert schema["properties"]["schemaversion"]["const"] == "3"
    assert schema["properties"]["dataschema"]["const"] == AccountOpened.dataschema
    assert {"id", "type", "specversion", "data"} <= set(schema["required"])
    assert schema["$defs"]["AccountData"]["required"] == ["account_id", "owner"]


def test_binary_round_trip_carries_every_envelope_field() -> None:
    registry = EventRegistry()
    codec = EventCodec(registry, source="accounts-svc")
    event = opened(subject="acc/7", correlationid="c-1", causationid="e-0", traceparent="00-x")
    (record,) = codec.records([event], lambda _: "accounts")
    headers = dict(record.headers)
    assert headers["ce_dataschema"] == b"https://schemas.example.com/account-opened/3"
    assert headers["ce_subject"] == b"acc/7"
    assert headers["ce_causationid"] == b"e-0"
    assert headers["traceparent"] == headers["ce_traceparent"] == b"00-x"
    assert record.key == b"7"
    decoded = codec.decode(message(record.headers, record.value, record.key))
    assert decoded == event.model_copy(update={"source": "accounts-svc"})


def test_structured_round_trip_and_a_non_model_data_type() -> None:
    registry = EventRegistry()
    codec = EventCodec(registry, source="counter", mode="structured")
    event = Counted(data=41, traceparent="00-abc")
    (record,) = codec.records([event], lambda _: "counts")
    body = json.loads(record.value)
    assert body["data"] == 41
    assert body["traceparent"] == "00-abc"
    assert dict(record.headers)["traceparent"] == b"00-abc"
    assert "ce_traceparent" not in dict(record.headers)  # structured: the envelope carries it
    assert codec.decode(message(record.headers, record.value)) == event.model_copy(
        update={"source": "counter", "correlationid": event.id}
    )


@pytest.mark.parametrize(
    ("headers", "value", "error"),
    [
        ([("ce_type", b"test.counted")], None, "no body"),
        ([("content-type", b"application/cloudevents+json")], b"{", "not JSON"),
        ([("content-type", b"application/cloudevents+json")], b"[1]", "no string `type`"),
        ([("ce_type", b"test.counted"), ("ce_schemaversion", b"x")], b"1", "not a version"),
        ([("ce_type", b"test.counted"), ("ce_schemaversion", b"1")], b'"a"', "invalid data"),
        ([("ce_type", b"test.counted"), ("ce_id", b"")], b"1", "invalid envelope"),
        ([("ce_type", b"test.account.opened"), ("ce_schemaversion", b"2")], b"[]", "not an object"),
        ([("ce_type", b"test.account.opened"), ("ce_schemaversion", b"2")], b"{x", "not JSON"),
    ],
)
def test_undecodable_messages_are_invalid_events(
    headers: list[tuple[str, bytes]], value: bytes | None, error: str
) -> None:
    registry = EventRegistry()
    registry.register(Counted)
    registry.upcaster(AccountOpened, from_version=2)(lambda data: data)
    with pytest.raises(InvalidEventError, match=error):
        EventCodec(registry, source="s").decode(message(headers, value))


def test_a_version_without_upcaster_path_is_unsupported_and_unknown_types_are_skipped() -> None:
    registry = EventRegistry()
    registry.register(AccountOpened)
    codec = EventCodec(registry, source="s")
    old = [("ce_type", b"test.account.opened"), ("ce_schemaversion", b"1.4")]
    with pytest.raises(UnsupportedVersionError, match="no upcaster"):
        codec.decode(message(old, b"{}"))
    assert codec.decode(message([("ce_type", b"test.other")], b"{}")) is None
    structured = [("content-type", b"application/cloudevents+json")]
    assert codec.decode(message(structured, b'{"type": "test.other"}')) is None
    assert codec.decode(message([("ce_type", b"test.other")], "text")) is None


def test_a_mixed_batch_keeps_each_events_topic_time_source_and_type() -> None:
    codec = EventCodec(EventRegistry(), source="accounts-svc")
    second = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    zero_offset = timezone(timedelta(0), "Z0")
    events: list[Event[Any]] = [
        opened(time=second + timedelta(microseconds=1)),
        opened(time=second + timedelta(microseconds=999_999), source="elsewhere"),
        Counted(data=1, time=(second + timedelta(seconds=1)).replace(tzinfo=zero_offset)),
        opened(time=second - timedelta(days=1)),
        opened(time=datetime.max.replace(tzinfo=UTC)),
        opened().model_copy(update={"time": datetime(2026, 1, 2, 3, 4, 5)}),  # unvalidated
        opened(time=second),
    ]
    runs: list[Run] = []
    records = list(codec.records(events, lambda e: e.topic or "counts", runs=runs))
    assert [record.topic for record in records] == ["accounts"] * 2 + ["counts"] + ["accounts"] * 4
    headers = [dict(record.headers) for record in records]
    assert [h["ce_time"] for h in headers] == [
        b"2026-01-02T03:04:05.000001Z",
        b"2026-01-02T03:04:05.999999Z",
        b"2026-01-02T03:04:06.000000Z",
        b"2026-01-01T03:04:05.000000Z",
        b"9999-12-31T23:59:59.999999Z",
        b"2026-01-02T03:04:05.000000Z",
        b"2026-01-02T03:04:05.000000Z",
    ]
    assert [h["ce_source"] for h in headers] == [b"accounts-svc", b"elsewhere"] + [
        b"accounts-svc"
    ] * 5
    assert [h["ce_type"] for h in headers][1:3] == [b"test.account.opened", b"test.counted"]
    assert [h["ce_correlationid"] for h in headers] == [event.id.encode() for event in events]
    assert runs == [
        (0, "accounts", AccountOpened),
        (2, "counts", Counted),
        (3, "accounts", AccountOpened),
    ]
    decoded = codec.decode(message(records[1].headers, records[1].value))
    assert decoded == events[1].model_copy(update={"correlationid": events[1].id})


class Ping(Event[AccountData]):
    type = "test.ping"
    key_field = "account_id"


def _outcome(item: Any) -> Any:
    """What a decoded item says, comparable: the event, None, or the error's class and text."""
    return (type(item), str(item)) if isinstance(item, Exception) else item


def test_decode_batch_gives_each_message_what_decode_gives_it() -> None:
    registry = EventRegistry()
    registry.register(Counted)
    registry.register(Ping)
    registry.upcaster(AccountOpened, from_version=2)(lambda data: {**data, "owner": "old"})
    sender = EventCodec(registry, source="sender")
    structured = EventCodec(registry, source="sender", mode="structured")
    data = AccountData(account_id=7, owner="kim")
    events: list[Event[Any]] = [
        Ping(data=data),  # aegis's own eight headers
        Ping(data=data, correlationid="c-1"),
        Ping(data=data, causationid="e-0"),  # nine headers
        Ping(data=data, subject="acc/7", traceparent="00-x"),
        opened(),  # a data schema header
        Counted(data=3),
    ]
    records = list(sender.records(events, lambda _: "t"))
    records += list(structured.records([Ping(data=data)], lambda _: "t"))
    messages = [message(r.headers, r.value, r.key) for r in records]
    ping = records[0]
    swap = list(ping.headers)
    swap[5], swap[6] = swap[6], swap[5]  # aegis's names, another order
    old = [(n, b"2" if n == "ce_schemaversion" else v) for n, v in records[4].headers]
    messages += [
        message(swap, ping.value),
        message(old, b'{"account_id": 7, "owner": "x"}'),  # upcast from version 2
        message([(n, b"x" if n == "ce_time" else v) for n, v in ping.headers], ping.value),
        message([(n, None if n == "ce_time" else v) for n, v in ping.headers], ping.value),  # type: ignore[misc]
        message(
            [(n, b"2026-13-01T00:00:00.000000Z" if n == "ce_time" else v) for n, v in ping.headers],
            ping.value,
        ),
        message(
            [
                (n, b"2026-05-01T09:00:00.000001+09:00" if n == "ce_time" else v)
                for n, v in ping.headers
            ],
            ping.value,
        ),
        message([(n, b"" if n == "ce_id" else v) for n, v in ping.headers], ping.value),
        message([(n, b"\xff" if n == "ce_source" else v) for n, v in ping.headers], ping.value),
        message(ping.headers, b'{"account_id": "seven"}'),
        message(ping.headers, None),
        message([(n, b"9" if n == "ce_schemaversion" else v) for n, v in ping.headers], b"{}"),
        message([(n, b"test.unknown" if n == "ce_type" else v) for n, v in ping.headers], b"{}"),
        message([], b"{}"),
    ]
    expected: list[Any] = []
    for each in messages:
        try:
            expected.append(EventCodec(registry, source="s").decode(each))
        except Exception as exc:
            expected.append(exc)
    batch = EventCodec(registry, source="s").decode_batch(messages)
    assert [_outcome(item) for item in batch] == [_outcome(item) for item in expected]
    assert [type(item).__name__ for item in batch[:6]] == [
        "Ping", "Ping", "Ping", "Ping", "AccountOpened", "Counted"
    ]  # fmt: skip
    assert batch[0].time.tzinfo is not None  # type: ignore[union-attr]
    assert batch[0] == events[0].model_copy(
        update={"source": "sender", "correlationid": events[0].id}
    )

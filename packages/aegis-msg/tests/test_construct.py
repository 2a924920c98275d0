"""Events of plain classes made without pydantic's validation, and the classes that get it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from aegis.msg import Event, EventCodec, EventRegistry, InvalidEventError, StoredMessage
from aegis.msg import _construct as construct
from aegis.msg._construct import _same_as_validated as same_as_validated
from aegis.msg._construct import plain_event_maker


class ItemData(BaseModel):
    item_id: int
    name: str


class ItemAdded(Event[ItemData]):
    type = "test.construct.item.added"
    version = 2
    key_field = "item_id"


class Checked(Event[ItemData]):
    type = "test.construct.checked"

    @field_validator("source")
    @classmethod
    def _known_source(cls, value: str | None) -> str | None:
        if value != "shop":
            raise ValueError("only the shop sends these")
        return value


class Stamped(Event[ItemData]):
    type = "test.construct.stamped"

    @model_validator(mode="after")
    def _subject(self) -> Stamped:
        object.__setattr__(self, "subject", f"item/{self.data.item_id}")
        return self


class Strict(Event[ItemData]):
    type = "test.construct.strict"
    model_config = ConfigDict(frozen=True, str_max_length=3)


class Ranked(Event[ItemData]):
    type = "test.construct.ranked"
    rank: int = 0


class Narrowed(Event[ItemData]):
    type = "test.construct.narrowed"
    id: str = Field(min_length=30)


class Private(Event[ItemData]):
    type = "test.construct.private"
    _seen: int = PrivateAttr(default=0)


class Posted(Event[ItemData]):
    type = "test.construct.posted"

    def model_post_init(self, context: Any, /) -> None:
        object.__setattr__(self, "subject", "posted")


class Revalidated(BaseModel):
    model_config = ConfigDict(revalidate_instances="always")
    item_id: int


class Copied(Event[Revalidated]):
    type = "test.construct.copied"


class Counted(Event[int]):
    type = "test.construct.counted"


def validated(event_type: type[Event[Any]], **envelope: Any) -> Event[Any]:
    event: Event[Any] = event_type.__pydantic_validator__.validate_python(envelope)
    return event


def test_a_plain_class_makes_the_event_pydantic_would_make() -> None:
    make = plain_event_maker(ItemAdded)
    assert make is not None
    data = ItemData(item_id=7, name="lamp")
    time = datetime(2026, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
    made = make("e-1", "shop", time, "c-1", data)
    expected = validated(
        ItemAdded, id="e-1", source="shop", time=time, correlationid="c-1", data=data
    )
    assert type(made) is ItemAdded
    assert list(made.__dict__.items()) == list(expected.__dict__.items())
    assert made.model_fields_set == expected.model_fields_set
    assert made.__pydantic_extra__ is None
    assert made.__pydantic_private__ is None
    assert made == expected
    assert repr(made) == repr(expected)
    assert made.model_dump() == expected.model_dump()
    assert made.model_dump_json() == expected.model_dump_json()
    with pytest.raises(ValueError, match="frozen"):
        made.subject = "x"  # type: ignore[misc]


@pytest.mark.parametrize(
    "event_type",
    [Checked, Stamped, Strict, Ranked, Narrowed, Private, Posted, Copied, Counted],
)
def test_a_class_that_adds_to_validation_gets_no_maker(event_type: type[Event[Any]]) -> None:
    assert plain_event_maker(event_type) is None


def test_a_maker_that_differs_from_pydantic_is_refused() -> None:
    def wrong(ident: str, source: str, time: datetime, correlation: str, data: Any) -> Any:
        return ItemAdded.model_construct(
            id=ident, source=source, time=time, correlationid=correlation, data=data
        ).model_copy(update={"subject": "other"})

    assert same_as_validated(ItemAdded, wrong) is False


def _messages(*events: Event[Any]) -> list[Any]:
    records = EventCodec(EventRegistry(), source="shop").records(events, lambda _: "items")
    return [StoredMessage("items", 0, i, r.key, r.value, r.headers) for i, r in enumerate(records)]


def test_decode_batch_makes_the_events_decode_validates() -> None:
    data = ItemData(item_id=1, name="lamp")
    messages = _messages(ItemAdded(data=data), ItemAdded(data=data, correlationid="c-9"))
    registry = EventRegistry()
    registry.register(ItemAdded)
    batch = EventCodec(registry, source="s").decode_batch(messages)
    for message, event in zip(messages, batch, strict=True):
        one = EventCodec(registry, source="s").decode(message)
        assert isinstance(event, ItemAdded)
        assert one is not None
        assert list(event.__dict__.items()) == list(one.__dict__.items())
        assert event.model_fields_set == one.model_fields_set
        assert repr(event) == repr(one)


def test_decode_batch_runs_the_validators_of_a_class_that_has_them() -> None:
    data = ItemData(item_id=1, name="lamp")
    registry = EventRegistry()
    registry.register(Checked)
    registry.register(Stamped)
    # model_construct(): sent as they are, unvalidated, as another producer might send them.
    checked = _messages(Checked(data=data), Checked.model_construct(data=data, source="elsewhere"))
    batch = EventCodec(registry, source="s").decode_batch(checked)
    assert isinstance(batch[0], Checked)
    assert isinstance(batch[1], InvalidEventError)
    assert "only the shop sends these" in str(batch[1])
    (stamped,) = EventCodec(registry, source="s").decode_batch(
        _messages(Stamped.model_construct(data=data))
    )
    assert isinstance(stamped, Stamped)
    assert stamped.subject == "item/1"


def test_without_pydantics_slots_the_events_are_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(construct, "_SLOTS", (*construct._SLOTS, "__pydantic_gone__"))
    assert construct._slot_setters() is None
    monkeypatch.setattr(construct, "_SLOT_SETTERS", None)
    assert plain_event_maker(ItemAdded) is None
    registry = EventRegistry()
    registry.register(ItemAdded)
    messages = _messages(ItemAdded(data=ItemData(item_id=1, name="lamp")))
    codec = EventCodec(registry, source="s")
    (event,) = codec.decode_batch(messages)
    one = EventCodec(registry, source="s").decode(messages[0])
    assert one is not None
    assert isinstance(event, ItemAdded)
    assert list(event.__dict__.items()) == list(one.__dict__.items())
    assert event.model_fields_set == one.model_fields_set


class Fussy(BaseModel):
    item_id: int

    def model_post_init(self, context: Any, /) -> None:
        if self.item_id < 0:  # AttributeError from model_construct() without values
            raise ValueError("negative")


class FussyAdded(Event[Fussy]):
    type = "test.construct.fussy"


def test_a_data_model_that_cannot_be_constructed_empty_leaves_validation_to_pydantic() -> None:
    assert plain_event_maker(FussyAdded) is None
    registry = EventRegistry()
    registry.register(FussyAdded)
    messages = _messages(FussyAdded(data=Fussy(item_id=3)), FussyAdded(data=Fussy(item_id=4)))
    events = EventCodec(registry, source="s").decode_batch(messages)
    assert [e.data.item_id for e in events if isinstance(e, FussyAdded)] == [3, 4]

"""Making the events of a plain event class from checked envelope values, without pydantic.

Validating a decoded envelope with pydantic costs about as much as validating its data, and a
plain event class (no validators, configuration or fields of its own besides ``data``) would
only check what decoding has already made sure of: strings for the ids and the source, a UTC
time, the data an instance of its model. :func:`plain_event_maker` builds such events the way
pydantic's own ``model_construct`` does, in a few C calls. The instance layout is pydantic's
(its four slots); whether it still is, and whether the class is plain, is checked once per class
by building one event both ways and comparing them, so another pydantic or an event class with
a validator of its own gets pydantic's validation.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

from pydantic import BaseModel

from aegis.msg._event import Event

logger = logging.getLogger("aegis.msg")

PlainEventMaker = Callable[[str, str, datetime, str, Any], Event[Any]]
"""``(id, source, time, correlationid, data) -> event``, the other envelope fields unset."""

_SLOTS: Final = (
    "__dict__",
    "__pydantic_fields_set__",
    "__pydantic_extra__",
    "__pydantic_private__",
)
_Setter = Callable[[object, Any], None]


def _slot_setters() -> tuple[_Setter, _Setter, _Setter, _Setter] | None:
    """The ``__set__`` of each of BaseModel's slots; ``None`` when one is missing."""
    found: list[Any] = [getattr(BaseModel.__dict__.get(name), "__set__", None) for name in _SLOTS]
    if None in found:
        return None
    set_dict, set_fields_set, set_extra, set_private = found
    return set_dict, set_fields_set, set_extra, set_private


_SLOT_SETTERS: Final = _slot_setters()
_FIELDS: Final = (
    "id",
    "source",
    "time",
    "subject",
    "correlationid",
    "causationid",
    "traceparent",
    "partitionkey",
    "data",
)


def plain_event_maker(event_type: type[Event[Any]]) -> PlainEventMaker | None:
    """A fast maker of ``event_type``'s events, or ``None`` when pydantic must validate them.

    The maker's caller guarantees what pydantic would check: ``id`` and ``source`` are
    non-empty strings, ``time`` a datetime at UTC (offset zero) and ``data`` an instance of
    the data model. ``None`` when the class is not plain: its own validators, configuration,
    fields, private attributes or ``model_post_init``; a data type that is not a model taken
    as it is; or pydantic building events otherwise than this module does.
    """
    if _SLOT_SETTERS is None or not _plain(event_type):
        return None
    new = object.__new__
    set_dict, set_fields_set, set_extra, set_private = _SLOT_SETTERS
    fields_set = frozenset(("id", "source", "time", "correlationid", "data"))

    def make(ident: str, source: str, time: datetime, correlation: str, data: Any) -> Event[Any]:
        event: Event[Any] = new(event_type)
        # BaseModel's slot descriptors: a fifth cheaper than object.__setattr__ (pydantic's
        # own model_construct() calls that).
        set_dict(
            event,
            {
                "id": ident,
                "source": source,
                "time": time,
                "subject": None,
                "correlationid": correlation,
                "causationid": None,
                "traceparent": None,
                "partitionkey": None,
                "data": data,
            },
        )
        set_fields_set(event, set(fields_set))
        set_extra(event, None)
        set_private(event, None)
        return event

    return make if _same_as_validated(event_type, make) else None


def _plain(event_type: type[Event[Any]]) -> bool:
    """Whether ``event_type`` adds nothing to validation but its data model (checked once)."""
    decorators = event_type.__pydantic_decorators__
    data = event_type.model_fields.get("data")
    data_type = None if data is None else data.annotation
    return (
        BaseModel.__slots__ == _SLOTS
        and event_type.__new__ is object.__new__
        and tuple(event_type.model_fields) == _FIELDS
        and all(
            repr(event_type.model_fields[name]) == repr(Event.model_fields[name])
            for name in _FIELDS[:-1]
        )
        and data is not None
        and not data.metadata
        and isinstance(data_type, type)
        and issubclass(data_type, BaseModel)
        and data_type.model_config.get("revalidate_instances", "never") == "never"
        and event_type.model_config == Event.model_config
        and not event_type.__private_attributes__
        and event_type.__pydantic_post_init__ is None
        and not event_type.__pydantic_root_model__
        and not any(
            (
                decorators.validators,
                decorators.field_validators,
                decorators.root_validators,
                decorators.model_validators,
            )
        )
    )


def _same_as_validated(event_type: type[Event[Any]], make: PlainEventMaker) -> bool:
    """Whether ``make`` gives what pydantic's validation of the same envelope gives."""
    data_type: type[BaseModel] = event_type.model_fields["data"].annotation  # type: ignore[assignment]
    time = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
    try:
        data = data_type.model_construct()
        validated = event_type.__pydantic_validator__.validate_python(
            {"id": "i", "source": "s", "time": time, "correlationid": "c", "data": data}
        )
        made = make("i", "s", time, "c", data)
    except Exception:  # a data model whose model_construct() fails (its own model_post_init),
        # or any other surprise: not plain, pydantic validates its events
        logger.debug("events of %s are validated by pydantic on decoding", event_type.__name__)
        return False
    same = (
        type(made) is type(validated)
        and list(made.__dict__.items()) == list(validated.__dict__.items())
        and validated.data is data
        and validated.time is time
        and made.__pydantic_fields_set__ == validated.__pydantic_fields_set__
        and made.__pydantic_extra__ == validated.__pydantic_extra__
        and made.__pydantic_private__ == validated.__pydantic_private__
    )
    if not same:
        logger.debug("events of %s are validated by pydantic on decoding", event_type.__name__)
    return same

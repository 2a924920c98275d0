"""The published contract changes only on purpose: its JSON Schema is checked in."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from user_events import UserCreated, UserDeleted, UserUpdated

from aegis.msg import Event, event_json_schema

CONTRACT = Path(__file__).with_name("contract.json")
EVENTS: tuple[type[Event[Any]], ...] = (UserCreated, UserUpdated, UserDeleted)


def current_contract() -> dict[str, Any]:
    """Each event type's JSON Schema, as aegis-msg exports it, by CloudEvents type."""
    return {event.type: event_json_schema(event) for event in EVENTS}


def test_the_event_schemas_are_the_checked_in_contract() -> None:
    # On a deliberate change: decide on a new version (and an upcaster), then regenerate with
    # python -c "import json, test_contract as t; print(json.dumps(t.current_contract(), indent=2))"
    assert current_contract() == json.loads(CONTRACT.read_text())


def test_every_event_is_keyed_by_the_user_so_one_users_events_stay_in_order() -> None:
    data = {"user_id": "u-1", "email": "a@b.c", "name": "A", "role": "user", "version": 1}
    for event_type in EVENTS:
        event = event_type.model_validate({"data": data})
        assert event.topic == "users"
        assert event.message_key() == "u-1"

"""The channels and operations of the AsyncAPI document: what each topic carries.

Operations are what the service's publishers send and each consumer group's handlers receive.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aegis.msg._asyncapi_messages import KAFKA_BINDING, MessageKey, constant


@dataclass
class Channel:
    """What the service sends to one topic, and what each of its consumer groups handles."""

    sends: dict[MessageKey, None] = field(default_factory=dict)  # ordered set
    receives: dict[str, dict[MessageKey, list[str]]] = field(default_factory=dict)  # by group


def channel_messages(channel: Channel) -> dict[MessageKey, None]:
    """The messages a channel carries: what is sent to it, then what is handled from it."""
    found = dict(channel.sends)
    for handled in channel.receives.values():
        found.update(dict.fromkeys(handled))
    return found


def operations(channels: dict[str, Channel], ids: dict[MessageKey, str]) -> dict[str, Any]:
    """The document's ``operations``: one send per topic, one receive per topic and group."""
    found: dict[str, Any] = {}
    for topic, channel in sorted(channels.items()):

        def refs(keys: dict[MessageKey, Any], topic: str = topic) -> list[dict[str, str]]:
            return [{"$ref": f"#/channels/{topic}/messages/{ids[key]}"} for key in keys]

        if channel.sends:
            types = ", ".join(f"`{key[0].type}`" for key in channel.sends)
            found[f"send-{topic}"] = {
                "action": "send",
                "channel": {"$ref": f"#/channels/{topic}"},
                "summary": f"Publishes {types} to `{topic}`.",
                "messages": refs(channel.sends),
            }
        for group, handled in sorted(channel.receives.items()):
            handlers = sorted({name for names in handled.values() for name in names})
            found[f"receive-{topic}-{group}"] = {
                "action": "receive",
                "channel": {"$ref": f"#/channels/{topic}"},
                "summary": f"Consumer group `{group}` handles "
                + ", ".join(f"`{key[0].type}`" for key in handled)
                + ".",
                "description": "Handlers: " + ", ".join(f"`{name}`" for name in handlers) + ".",
                "messages": refs(handled),
                "bindings": {
                    "kafka": {"groupId": constant(group), "bindingVersion": KAFKA_BINDING}
                },
            }
    return found

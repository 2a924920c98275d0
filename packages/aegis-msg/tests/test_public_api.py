"""The public names of aegis.msg: an addition or removal shows up here in review."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

import aegis.msg


def test_public_names_are_exactly_these() -> None:
    assert aegis.msg.__all__ == [
        "SPEC_VERSION",
        "AsyncAPI",
        "BatchFailedError",
        "BatchHandler",
        "BatchResult",
        "Claim",
        "Concurrency",
        "DeadLetter",
        "DeadLetterSelection",
        "DeadLetters",
        "DeliveryResult",
        "Event",
        "EventCodec",
        "EventInProgressError",
        "EventPublisher",
        "EventRegistry",
        "EventSubscriber",
        "Handler",
        "Headers",
        "IdempotencyStore",
        "InMemoryTransport",
        "InvalidEventError",
        "KafkaProducer",
        "KafkaSettings",
        "KafkaTransport",
        "MsgMetrics",
        "Outbox",
        "OutboxRelay",
        "OutgoingRecord",
        "PublishError",
        "RedisIdempotencyStore",
        "RelayStatus",
        "ReplayResult",
        "RetryPolicy",
        "SqlIdempotencyStore",
        "StoredMessage",
        "Transport",
        "UnsupportedVersionError",
        "Upcaster",
        "WireMode",
        "__version__",
        "default_registry",
        "event_json_schema",
        "idempotent",
        "make_transport",
        "new_event_id",
    ]
    assert all(getattr(aegis.msg, name) is not None for name in aegis.msg.__all__)
    assert aegis.msg.__version__ == "0.1.0"
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        aegis.msg.Nope  # noqa: B018 - the lookup is the test


def test_every_public_function_and_class_has_a_docstring() -> None:
    objects = {name: getattr(aegis.msg, name) for name in aegis.msg.__all__}
    undocumented = [
        name
        for name, value in objects.items()
        if (inspect.isfunction(value) or inspect.isclass(value)) and not value.__doc__
    ]
    assert undocumented == []


def test_error_codes_are_stable() -> None:
    assert aegis.msg.PublishError("x").code == "MSG_PUBLISH_FAILED"
    assert aegis.msg.PublishError("x").status == 503
    assert aegis.msg.InvalidEventError("x").code == "MSG_INVALID_EVENT"
    assert aegis.msg.UnsupportedVersionError("x").code == "MSG_UNSUPPORTED_VERSION"
    assert aegis.msg.EventInProgressError("x").status == 409
    assert aegis.msg.BatchFailedError(3).code == "MSG_BATCH_EVENT_FAILED"
    assert aegis.msg.BatchFailedError(3).details == {"index": 3}


def test_import_needs_neither_sqlalchemy_nor_redis() -> None:
    code = "import sys, aegis.msg; print([m for m in ('sqlalchemy', 'redis') if m in sys.modules])"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


# Makes SQLAlchemy impossible to import, as if the outbox extra were not installed.
HIDE_SQLALCHEMY = """
import sys
from importlib.abc import MetaPathFinder

class Hide(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] == "sqlalchemy":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Hide())
"""


@pytest.mark.parametrize("name", ["Outbox", "OutboxRelay", "SqlIdempotencyStore"])
def test_an_outbox_name_without_sqlalchemy_says_which_extra_to_install(name: str) -> None:
    script = (
        f"{HIDE_SQLALCHEMY}\n"
        "try:\n"
        f"    from aegis.msg import {name}\n"
        "except ModuleNotFoundError as exc:\n"
        "    print(exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == (
        f"aegis.msg.{name} needs sqlalchemy, which is not installed: "
        "pip install 'aegis-msg[outbox]'"
    )

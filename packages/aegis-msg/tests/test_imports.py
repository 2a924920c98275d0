"""`import aegis.msg` stays lean: only the errors (which register their codes) load with it."""

from __future__ import annotations

from aegis.testing import modules_loaded_by

# What each deferred module would cost every `import aegis.msg` (benchmarks/import_time.py).
DEFERRED = {
    "confluent_kafka": "the Kafka transport",
    "pydantic": "the event models",
    "aegis.msg._asyncapi": "the AsyncAPI document",
    "aegis.msg._publisher": "the publisher",
    "aegis.msg._subscriber": "the subscriber",
}


def test_import_aegis_msg_loads_only_its_errors() -> None:
    loaded = modules_loaded_by("import aegis.msg")
    assert sorted(loaded & DEFERRED.keys()) == []
    assert "aegis.msg._errors" in loaded  # the MSG_* codes are registered at import


def test_a_name_loads_its_module_when_first_read() -> None:
    loaded = modules_loaded_by("from aegis.msg import EventPublisher")
    assert "aegis.msg._publisher" in loaded
    assert "aegis.msg._asyncapi" not in loaded

"""`import aegis.log` stays lean: optional and configuration-only pieces load on first use."""

from __future__ import annotations

from aegis.testing import modules_loaded_by

# What each deferred module would cost every `import aegis.log` (benchmarks/import_time.py).
DEFERRED = {
    "sentry_sdk": "the sentry extra",
    "opentelemetry": "the otel extra, until the first line that wants trace ids",
    "http.client": "the Elasticsearch shipper",
    "gzip": "rotated file compression",
    "aegis.core.models": "pydantic model building, wanted only by the settings",
    "pydantic": "pydantic itself: masking recognises models and secrets without it",
    "aegis.log._settings": "the settings models, until a configuration names them",
    "aegis.log._asgi": "the ASGI middleware",
}


def test_import_aegis_log_does_not_import_the_optional_pieces() -> None:
    loaded = modules_loaded_by("import aegis.log")
    assert sorted(loaded & DEFERRED.keys()) == []


def test_getting_a_logger_and_writing_lines_without_trace_ids_stays_lean() -> None:
    loaded = modules_loaded_by(
        "import aegis.log\n"
        "aegis.log.configure_logging(aegis.log.LogSettings(trace_ids=False))\n"
        "aegis.log.get_logger('app').info('ready')"
    )
    assert sorted(loaded & {"sentry_sdk", "opentelemetry", "http.client", "gzip"}) == []


def test_a_deferred_name_loads_its_module_when_first_read() -> None:
    loaded = modules_loaded_by("import aegis.log\naegis.log.RotatingFileOutput")
    assert {"aegis.log._file", "gzip"} <= loaded

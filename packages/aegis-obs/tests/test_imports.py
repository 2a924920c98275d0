"""`import aegis.obs` stays lean: every name loads its module when first read."""

from __future__ import annotations

from aegis.testing import modules_loaded_by

# What each deferred module would cost every `import aegis.obs` (benchmarks/import_time.py).
DEFERRED = {
    "pydantic": "the tracing settings model",
    "aegis.obs._tracing_settings": "the tracing settings model",
    "aegis.obs._health": "health checks, with aegis.core's masking",
    "aegis.obs._asgi": "the middleware, with OpenTelemetry's propagators and Starlette",
    "httpx": "the http extra",
}


def test_import_aegis_obs_loads_none_of_its_parts() -> None:
    loaded = modules_loaded_by("import aegis.obs")
    assert sorted(loaded & DEFERRED.keys()) == []


def test_a_name_loads_its_module_when_first_read() -> None:
    loaded = modules_loaded_by("from aegis.obs import ObservabilityMiddleware")
    assert "aegis.obs._asgi" in loaded
    assert "aegis.obs._tracing_settings" not in loaded

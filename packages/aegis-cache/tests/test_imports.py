"""`import aegis.cache` stays lean: only the errors (which register their codes) load with it."""

from __future__ import annotations

from aegis.testing import modules_loaded_by

# What each deferred module would cost every `import aegis.cache` (benchmarks/import_time.py).
DEFERRED = {
    "redis": "redis-py's asyncio client",
    "pydantic": "the settings model",
    "aegis.cache._client": "the cache",
    "aegis.cache._settings": "the settings model",
}


def test_import_aegis_cache_loads_only_its_errors() -> None:
    loaded = modules_loaded_by("import aegis.cache")
    assert sorted(loaded & DEFERRED.keys()) == []
    assert "aegis.cache._errors" in loaded  # the CACHE_* codes are registered at import


def test_a_name_loads_its_module_when_first_read() -> None:
    loaded = modules_loaded_by("from aegis.cache import Cache")
    assert "aegis.cache._client" in loaded

"""The public names of aegis.log: an addition or removal shows up here in review."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

import aegis.log


def test_public_names_are_exactly_these() -> None:
    assert aegis.log.__all__ == [
        "AegisHandler",
        "AegisLogger",
        "ConsoleOutput",
        "ConsoleSettings",
        "ElasticsearchOutput",
        "ElasticsearchSettings",
        "FileSettings",
        "LogEntry",
        "LogOutput",
        "LogSettings",
        "RequestLoggingMiddleware",
        "RotatingFileOutput",
        "SentryOutput",
        "ShipperStats",
        "StreamOutput",
        "__version__",
        "bind_context",
        "bound_context",
        "capture_logs",
        "clear_context",
        "configure_logging",
        "configure_sentry",
        "configured_logging",
        "get_context",
        "get_logger",
        "set_level",
        "shutdown_logging",
        "unbind_context",
    ]
    assert all(hasattr(aegis.log, name) for name in aegis.log.__all__)
    assert aegis.log.__version__ == "0.1.0"


def test_every_public_name_has_a_docstring() -> None:
    undocumented = [
        name
        for name in aegis.log.__all__
        if callable(getattr(aegis.log, name)) and not getattr(aegis.log, name).__doc__
    ]
    assert undocumented == []


def test_settings_accept_level_spellings_and_refuse_unknown_ones() -> None:
    settings = aegis.log.LogSettings.model_validate(
        {"level": "warn", "levels": {"a": 10, "b": "fatal"}}
    )
    assert settings.level == "WARNING"
    assert settings.levels == {"a": "DEBUG", "b": "CRITICAL"}
    with pytest.raises(ValidationError, match="level"):
        aegis.log.LogSettings.model_validate({"level": "LOUD"})
    with pytest.raises(ValidationError, match="level"):
        aegis.log.LogSettings.model_validate({"level": 2.5})

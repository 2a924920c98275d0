"""Environment detection: AEGIS_ENV, APP_ENV, ENVIRONMENT, aliases and the is_* helpers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aegis.config import (
    Environment,
    detect_environment,
    is_development,
    is_production,
    is_staging,
    is_test,
    parse_environment,
)
from aegis.core.errors import ConfigurationError


def test_no_variable_means_development() -> None:
    assert detect_environment() is Environment.DEVELOPMENT
    assert detect_environment({}) is Environment.DEVELOPMENT


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("development", Environment.DEVELOPMENT),
        ("dev", Environment.DEVELOPMENT),
        ("local", Environment.DEVELOPMENT),
        ("staging", Environment.STAGING),
        ("stage", Environment.STAGING),
        ("production", Environment.PRODUCTION),
        ("prod", Environment.PRODUCTION),
        ("test", Environment.TEST),
        ("testing", Environment.TEST),
    ],
)
def test_names_and_aliases_are_normalized(value: str, expected: Environment) -> None:
    assert detect_environment({"AEGIS_ENV": value}) is expected


@given(
    name=st.sampled_from(["production", "prod", "Staging", "dev", "TEST"]),
    blanks=st.sampled_from(["", " ", "\t", "  \n"]),
    upper=st.booleans(),
)
def test_case_and_surrounding_blanks_do_not_matter(name: str, blanks: str, upper: bool) -> None:
    value = blanks + (name.upper() if upper else name) + blanks
    assert parse_environment(value) is parse_environment(name.lower())


def test_aegis_env_wins_over_app_env_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "staging")
    assert detect_environment() is Environment.STAGING
    monkeypatch.setenv("APP_ENV", "test")
    assert detect_environment() is Environment.TEST
    monkeypatch.setenv("AEGIS_ENV", "prod")
    assert detect_environment() is Environment.PRODUCTION


def test_an_empty_variable_counts_as_unset() -> None:
    assert detect_environment({"AEGIS_ENV": " ", "APP_ENV": "staging"}) is Environment.STAGING


def test_an_unknown_environment_is_a_clear_error() -> None:
    with pytest.raises(ConfigurationError) as caught:
        detect_environment({"APP_ENV": "qa"})
    assert caught.value.code == "CONFIGURATION_ERROR"
    assert caught.value.message == (
        "APP_ENV='qa' is not a known environment; use one of development, test,"
        " staging, production (aliases: dev, local, prod, stage, testing)"
    )
    assert caught.value.details["variable"] == "APP_ENV"


def test_an_environment_member_passes_through() -> None:
    assert parse_environment(Environment.STAGING) is Environment.STAGING


@pytest.mark.parametrize("environment", list(Environment))
def test_exactly_one_helper_answers_true(environment: Environment) -> None:
    environ = {"AEGIS_ENV": environment.value}
    answers = {
        Environment.DEVELOPMENT: is_development(environ),
        Environment.STAGING: is_staging(environ),
        Environment.PRODUCTION: is_production(environ),
        Environment.TEST: is_test(environ),
    }
    assert [e for e, answer in answers.items() if answer] == [environment]


def test_helpers_read_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert is_development()
    monkeypatch.setenv("AEGIS_ENV", "production")
    assert is_production()
    assert not is_development()

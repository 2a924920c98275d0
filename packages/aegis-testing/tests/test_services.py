"""Choosing between a configured server and an embedded one."""

from __future__ import annotations

import pytest

from aegis.testing import ServiceStartError, database_url, redact, service_url


def test_configured_url_is_used_when_it_answers(redis_url: str) -> None:
    with service_url("redis", {"AEGIS_TEST_REDIS_URL": redis_url}) as url:
        assert url == redis_url


def test_embedded_is_forced_even_when_a_url_is_configured(redis_url: str) -> None:
    environ = {"AEGIS_TEST_REDIS_URL": redis_url, "AEGIS_TEST_SERVICES": "embedded"}
    with service_url("redis", environ) as url:
        assert url != redis_url
        assert url.startswith("redis://127.0.0.1:")


def test_unreachable_configured_url_names_the_variable_and_hides_the_password() -> None:
    environ = {"AEGIS_TEST_POSTGRES_URL": "postgresql://app:s3cret@127.0.0.1:1/app"}
    with pytest.raises(ServiceStartError) as caught, service_url("postgres", environ):
        pass
    message = str(caught.value)
    assert message.startswith("AEGIS_TEST_POSTGRES_URL=postgresql://app:***@127.0.0.1:1/app is set")
    assert "s3cret" not in message


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("postgresql://u:p@h:5/db?sslmode=require", "postgresql://u:***@h:5/db?sslmode=require"),
    ],
)
def test_redact_hides_only_the_password(url: str, expected: str) -> None:
    assert redact(url) == expected


def test_database_url_keeps_socket_host_and_options() -> None:
    url = "postgresql://postgres:@/postgres?host=/tmp/aegis-x/pgdata"
    assert database_url(url, "aegis_test_1") == (
        "postgresql://postgres:@/aegis_test_1?host=/tmp/aegis-x/pgdata"
    )

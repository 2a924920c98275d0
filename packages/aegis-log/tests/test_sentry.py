"""configure_sentry against a local endpoint that receives what the real sentry-sdk sends."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
import sentry_sdk
from pydantic import SecretStr
from sentry_sdk.envelope import Envelope

from aegis.core.context import request_context
from aegis.core.errors import ConfigurationError
from aegis.log import bind_context, configure_sentry, get_logger, shutdown_logging

if TYPE_CHECKING:
    from conftest import Lines, Recorder


@pytest.fixture
def sentry(http_server: tuple[str, Recorder], lines: Lines) -> Iterator[Recorder]:
    """Sentry reporting to the local server; closed after the test."""
    url, recorder = http_server
    dsn = url.replace("http://", "http://public-key@") + "/42"
    configure_sentry(SecretStr(dsn), environment="test", release="users@1.2.3")
    yield recorder
    shutdown_logging()
    sentry_sdk.get_client().close()


def sent_events(recorder: Recorder) -> list[dict[str, Any]]:
    sentry_sdk.flush(timeout=5)
    events = []
    for path, _, body in recorder.requests:
        assert path == "/api/42/envelope/"
        for item in Envelope.deserialize(body).items:
            if item.type == "event":
                assert item.payload.json is not None
                events.append(item.payload.json)
    return events


def _charge() -> None:
    raise ValueError("card 4111 1111 1111 1111 declined")


def test_error_with_exception_becomes_an_event_with_context(sentry: Recorder) -> None:
    log = get_logger("app.payments")
    with request_context(request_id="r-1", user_id="u-7", tenant_id="t-1"):
        bind_context(order_id=99, api_key="k-" + "123")  # not in the source lines Sentry sends
        log.info("charging", amount=10)
        try:
            _charge()
        except ValueError:
            log.exception("charge failed", gateway="stripe")
    (event,) = sent_events(sentry)
    assert event["level"] == "error"
    assert event["logger"] == "app.payments"
    assert event["logentry"]["message"] == "charge failed"
    assert event["environment"] == "test"
    assert event["release"] == "users@1.2.3"
    assert event["tags"]["request_id"] == "r-1"
    assert event["tags"]["tenant_id"] == "t-1"
    assert event["user"] == {"id": "u-7"}
    assert event["extra"]["gateway"] == "stripe"
    assert event["extra"]["order_id"] == 99
    assert event["extra"]["api_key"] == "***"
    (exception,) = event["exception"]["values"]
    assert exception["type"] == "ValueError"
    assert exception["value"] == "card *** declined"
    frames = exception["stacktrace"]["frames"]
    assert frames[-1]["function"] == "_charge"
    assert all("vars" not in frame for frame in frames)
    (crumb,) = [c for c in event["breadcrumbs"]["values"] if c["category"] == "app.payments"]
    assert crumb["message"] == "charging"
    assert crumb["level"] == "info"
    assert crumb["data"]["amount"] == 10
    assert crumb["data"]["api_key"] == "***"
    assert "4111" not in str(event)
    assert "k-123" not in str(event)


def test_stdlib_errors_without_exception_become_events(sentry: Recorder) -> None:
    logging.getLogger("app.library").critical("disk %s full", "/var", extra={"free": 0})
    logging.getLogger("app.library").warning("getting full")
    (event,) = sent_events(sentry)
    assert event["level"] == "fatal"
    assert event["logentry"]["message"] == "disk /var full"
    assert event["extra"]["free"] == 0
    assert "exception" not in event


def test_lines_below_the_breadcrumb_level_are_ignored(sentry: Recorder) -> None:
    log = get_logger("app.quiet")
    log.debug("too detailed")
    log.error("reported")
    (event,) = sent_events(sentry)
    messages = [crumb.get("message") for crumb in event.get("breadcrumbs", {}).get("values", [])]
    assert "too detailed" not in messages


def test_configuring_twice_sends_each_event_once(
    sentry: Recorder, http_server: tuple[str, Recorder]
) -> None:
    url, _ = http_server
    configure_sentry(url.replace("http://", "http://public-key@") + "/42", event_level="WARNING")
    get_logger("app.twice").warning("warned once")
    (event,) = sent_events(sentry)
    assert event["logentry"]["message"] == "warned once"


def test_unknown_levels_are_refused() -> None:
    with pytest.raises(ConfigurationError):
        configure_sentry("http://key@127.0.0.1:1/1", event_level="LOUD")

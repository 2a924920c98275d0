"""configure_sentry against a local endpoint that receives what the real sentry-sdk sends."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
import sentry_sdk
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr
from sentry_sdk.envelope import Envelope

from aegis.core.context import request_context
from aegis.core.errors import ConfigurationError
from aegis.core.utils.masking import DEFAULT_SENSITIVE_KEYS
from aegis.log import (
    LogSettings,
    bind_context,
    configure_logging,
    configure_sentry,
    get_logger,
    shutdown_logging,
)
from aegis.log._sentry import event_masker

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


def test_an_access_line_of_a_5xx_is_a_breadcrumb_of_the_one_error_event(sentry: Recorder) -> None:
    access, handler = get_logger("aegis.access"), get_logger("aegis.core.web")
    with request_context(request_id="r-5"):
        try:
            _charge()
        except ValueError:
            handler.exception("POST /charge answered 500 INTERNAL_ERROR")
        access.error("request", status=500, route="/charge")
        access.error("request", status=503, route="/other")  # a 5xx with no error of its own
        handler.error("the next event carries the access lines")
    first, second = sent_events(sentry)
    assert first["logentry"]["message"] == "POST /charge answered 500 INTERNAL_ERROR"
    crumbs = [c for c in second["breadcrumbs"]["values"] if c["category"] == "aegis.access"]
    assert [c["data"]["status"] for c in crumbs] == [500, 503]


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


def test_unknown_personal_data_kinds_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="passport") as refused:
        configure_sentry("http://key@127.0.0.1:1/1", mask_pii={"passport"})  # type: ignore[arg-type]
    assert refused.value.details == {"field": "mask_pii"}


# --- secrets inside text ------------------------------------------------------------------------


def _connect(dsn: str) -> None:
    raise ConnectionError(f"could not connect to {dsn}")


def _login() -> None:
    try:
        _connect("postgresql://app:db-s3cret@db:5432/main")
    except ConnectionError as exc:
        raise RuntimeError("login failed for password=hunter2") from exc


def test_secrets_in_exception_messages_causes_and_breadcrumbs_are_masked(
    sentry: Recorder,
) -> None:
    log = get_logger("app.auth")
    log.info("calling upstream with Authorization: Bearer eyJ0.e30.c2ln-crumb")
    try:
        _login()
    except RuntimeError:
        log.exception("login failed", attempt={"note": "token=t-extra"})
    (event,) = sent_events(sentry)
    sent = json.dumps(event)
    # built here: Sentry sends the source lines around each frame, these ones included
    for secret in ("db-" + "s3cret", "hunter" + "2", "c2ln-" + "crumb", "t-" + "extra"):
        assert secret not in sent
    cause, error = event["exception"]["values"]  # Sentry lists the cause first
    assert error["value"] == "login failed for password=***"
    assert cause["value"] == "could not connect to postgresql://app:***@db:5432/main"
    assert event["extra"]["attempt"] == {"note": "token=***"}
    messages = [crumb.get("message") for crumb in event["breadcrumbs"]["values"]]
    assert "calling upstream with Authorization: Bearer ***" in messages


def test_events_sentry_builds_itself_are_masked(sentry: Recorder) -> None:
    sentry_sdk.add_breadcrumb(category="http", message="GET /cb?access_token=t-crumb")
    try:
        _login()
    except RuntimeError as exc:
        sentry_sdk.capture_exception(exc)
    sentry_sdk.capture_event(
        {
            "message": "upstream said: {'client_secret': 'cs-1'}",
            "request": {
                "url": "https://api.example.com/cb",
                "query_string": "code=c-1&state=s&access_token=t-query",
                "headers": {"Authorization": "Bearer t-header", "Accept": "*/*"},
                "data": {"comment": "my password: p-body"},
            },
        }
    )
    error, message = sent_events(sentry)
    sent = json.dumps([error, message])
    for secret in ("db-s3cret", "hunter2", "t-crumb", "cs-1", "t-query", "t-header", "p-body"):
        assert secret not in sent
    assert error["exception"]["values"][-1]["value"] == "login failed for password=***"
    request = message["request"]
    assert request["query_string"] == "code=c-1&state=s&access_token=***"
    assert request["headers"] == {"Authorization": "***", "Accept": "*/*"}
    assert request["url"] == "https://api.example.com/cb"


def test_transactions_are_masked(http_server: tuple[str, Recorder]) -> None:
    url, recorder = http_server
    configure_sentry(url.replace("http://", "http://public-key@") + "/42", traces_sample_rate=1.0)
    with sentry_sdk.start_transaction(name="GET /callback", op="http.server") as transaction:
        transaction.set_data("url", "https://api.example.com/cb?access_token=t-txn")
        with sentry_sdk.start_span(op="db", name="SET password = 'p-span'"):
            pass
    sentry_sdk.flush(timeout=5)
    sent = [
        item.payload.json
        for _, _, body in recorder.requests
        for item in Envelope.deserialize(body).items
        if item.type == "transaction"
    ]
    shutdown_logging()
    sentry_sdk.get_client().close()
    assert len(sent) == 1
    text = json.dumps(sent)
    assert "t-txn" not in text
    assert "p-span" not in text
    assert "access_token=***" in text


def test_personal_data_follows_the_logging_configuration(
    http_server: tuple[str, Recorder],
) -> None:
    url, recorder = http_server
    dsn = url.replace("http://", "http://public-key@") + "/42"
    configure_logging(LogSettings(console=None, mask_pii={"email"}))
    configure_sentry(dsn)
    try:
        raise LookupError("no account for kim@example.com, call 010-1234-5678")
    except LookupError as exc:
        sentry_sdk.capture_exception(exc)
    configure_sentry(dsn, mask_pii={"phone"})
    try:
        raise LookupError("no account for kim@example.com, call 010-1234-5678")
    except LookupError as exc:
        sentry_sdk.capture_exception(exc)
    first, second = (event["exception"]["values"][0]["value"] for event in sent_events(recorder))
    shutdown_logging()
    sentry_sdk.get_client().close()
    assert first == "no account for ***, call 010-1234-5678"
    assert second == "no account for kim@example.com, call ***"


def test_an_event_that_cannot_be_masked_is_dropped(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(*_args: object, **_kwargs: object) -> object:
        raise RuntimeError("masking broke")

    monkeypatch.setattr("aegis.log._sentry.mask_sensitive", broken)
    mask_event = event_masker(DEFAULT_SENSITIVE_KEYS, "***", ())
    assert mask_event({"message": "password=hunter2"}, {}) is None
    assert "event dropped: RuntimeError: masking broke" in capsys.readouterr().err


# A secret ends in a digit: a plain word after "Bearer" is taken for prose ("bearer token").
_SECRET = st.from_regex(r"Q[A-Za-z0-9]{4,11}[0-9]", fullmatch=True)
_AROUND = st.text(alphabet=st.sampled_from(list("abz AZ 09 .,;:=&/-_'\"()[]{}@")), max_size=16)
_FORMS = st.sampled_from(
    ["password={}", "token: {}", "Authorization: Bearer {}", "postgresql://app:{}@db/x"]
)
_EVENT_SLOTS = [
    ("logentry", "message"),
    ("exception", "values", 0, "value"),
    ("exception", "values", 1, "value"),
    ("breadcrumbs", "values", 0, "message"),
    ("breadcrumbs", "values", 0, "data", "url"),
    ("request", "query_string"),
    ("request", "data"),
    ("request", "headers", "X-Forwarded-Info"),
    ("extra", "job", "args", 2),
    ("contexts", "runtime", "build"),
    ("tags", "note"),
]


def _event_with(slot: tuple[str | int, ...], text: str) -> dict[str, Any]:
    event: dict[str, Any] = {
        "logentry": {"message": "ok"},
        "exception": {"values": [{"type": "E", "value": "a"}, {"type": "F", "value": "b"}]},
        "breadcrumbs": {"values": [{"message": "m", "data": {"url": "/x"}}]},
        "request": {"query_string": "a=1", "data": "", "headers": {"X-Forwarded-Info": "-"}},
        "extra": {"job": {"args": [1, "two", "three"]}},
        "contexts": {"runtime": {"build": "3.11"}},
        "tags": {"note": "n"},
    }
    target: Any = event
    for step in slot[:-1]:
        target = target[step]
    target[slot[-1]] = text
    return event


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(_EVENT_SLOTS), _AROUND, _FORMS, _SECRET, _AROUND)
def test_a_secret_planted_anywhere_in_an_event_never_leaves(
    slot: tuple[str | int, ...], before: str, form: str, secret: str, after: str
) -> None:
    mask_event = event_masker(DEFAULT_SENSITIVE_KEYS, "***", ())
    event = _event_with(slot, before + form.format(secret) + after)
    masked = mask_event(event, {})
    assert secret not in json.dumps(masked)
    assert secret in json.dumps(event)  # the event itself is not changed

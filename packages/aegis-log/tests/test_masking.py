"""Secrets inside free text never leave: messages, exceptions (causes too), nested fields."""

from __future__ import annotations

import io
import json
import logging
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aegis.core.models import Environment
from aegis.core.utils.masking import DEFAULT_SENSITIVE_KEYS, mask_sensitive
from aegis.log import ConsoleSettings, LogSettings, StreamOutput, configure_logging, get_logger
from aegis.log._pipeline import FieldMasker

if TYPE_CHECKING:
    from collections.abc import Callable

    from conftest import Lines


class GatewayError(Exception):
    """An error whose message carries what a careless caller put in it."""


def _fail_with(message: str, cause: str | None = None) -> None:
    if cause is None:
        raise GatewayError(message)
    try:
        raise ConnectionError(cause)
    except ConnectionError as exc:
        raise GatewayError(message) from exc


def test_a_secret_in_the_message_is_masked(lines: Lines) -> None:
    get_logger("tests.text").warning(
        "retrying with Authorization: Bearer eyJhbGciOi.eyJzdWIi.c2ln and password=hunter2"
    )
    assert lines.last()["event"] == "retrying with Authorization: Bearer *** and password=***"


def test_a_secret_in_a_stdlib_message_and_its_arguments_is_masked(lines: Lines) -> None:
    logging.getLogger("tests.stdlib").error("connect to %s failed", "redis://:s3cret@cache:6379")
    assert lines.last()["event"] == "connect to redis://:***@cache:6379 failed"


def test_exception_messages_and_their_causes_are_masked(lines: Lines) -> None:
    try:
        _fail_with("charge failed: api_key=k-live-123", cause="dsn postgresql://app:s3cret@db/x")
    except GatewayError as exc:
        exc.add_note("retry with token=t-456")
        get_logger("tests.text").exception("payment failed")
    raw = lines.raw()[-1].decode()
    for secret in ("k-live-123", "s3cret", "t-456"):
        assert secret not in raw
    error, cause = lines.last()["exception"]
    assert error["exc_value"] == "charge failed: api_key=***"
    assert error["exc_notes"] == ["retry with token=***"]
    assert cause["exc_value"] == "dsn postgresql://app:***@db/x"


def test_an_exception_given_as_a_field_is_masked_by_what_it_shows(lines: Lines) -> None:
    error = GatewayError("denied: {'password': 'hunter2'}")
    get_logger("tests.text").error("login failed", error=error, body=b"token=abc&user=kim")
    line = lines.last()
    assert line["error"] == "GatewayError(\"denied: {'password': '***'}\")"
    assert line["body"] == "token=***&user=kim"


def test_personal_data_is_kept_unless_configured(configure_into: Callable[..., Lines]) -> None:
    text = "kim@example.com, 010-1234-5678, 900101-1234567"
    captured = configure_into()
    get_logger("tests.pii").info(text, contact={"note": text})
    assert captured.last()["event"] == text
    captured = configure_into(mask_pii={"email", "rrn"})
    get_logger("tests.pii").info(text, contact={"note": text})
    line = captured.last()
    assert line["event"] == "***, 010-1234-5678, ***"
    assert line["contact"] == {"note": "***, 010-1234-5678, ***"}


def test_unknown_personal_data_kinds_are_refused() -> None:
    with pytest.raises(ValueError, match="passport"):
        LogSettings(mask_pii={"passport"})


def test_a_key_that_holds_a_secret_is_masked_too(lines: Lines) -> None:
    get_logger("tests.text").info("odd keys", **{"postgresql://app:s3cret@db": 1})
    assert "postgresql://app:***@db" in lines.last()
    assert b"s3cret" not in lines.raw()[-1]


def test_the_development_console_masks_the_trace(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(
        LogSettings(environment=Environment.DEVELOPMENT, console=ConsoleSettings(colors=False))
    )
    try:
        _fail_with("login failed: password=hunter2", cause="token: t-456")
    except GatewayError:
        get_logger("tests.dev").exception("failed")
    out = capsys.readouterr().out
    assert "GatewayError: login failed: password=***" in out
    assert "ConnectionError: token: ***" in out
    assert "hunter2" not in out
    assert "t-456" not in out


def test_the_development_console_keeps_a_trace_without_secrets(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging(
        LogSettings(environment=Environment.DEVELOPMENT, console=ConsoleSettings(colors=False))
    )
    try:
        _fail_with("nothing to hide")
    except GatewayError:
        get_logger("tests.dev").exception("failed")
    assert "GatewayError: nothing to hide" in capsys.readouterr().out


def _connect_with(password: str) -> None:
    raise ConnectionRefusedError("connection refused")  # the message hides nothing, a local does


def test_the_development_console_masks_what_the_pretty_trace_shows(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging(
        LogSettings(environment=Environment.DEVELOPMENT, console=ConsoleSettings(colors=False))
    )
    try:
        _connect_with("hunter" + "2")  # rich shows the locals of each frame
    except ConnectionRefusedError:
        get_logger("tests.dev").exception("failed")
    out = capsys.readouterr().out
    assert "ConnectionRefusedError: connection refused" in out
    assert "hunter2" not in out


# --- properties -----------------------------------------------------------------------------------

# Text around a planted secret: no "Q", so the secret (which has one) cannot come from it.
_AROUND = st.text(alphabet=st.sampled_from(list("abz AZ 09 .,;:=&/-_'\"()[]{}@\n한")), max_size=20)
# A secret ends in a digit: a plain word after "Bearer" is taken for prose ("bearer token").
_SECRET = st.from_regex(r"Q[A-Za-z0-9]{4,11}[0-9]", fullmatch=True)
_FORMS = st.sampled_from(
    [
        "password={}",
        "token: {}",
        "Authorization: Bearer {}",
        " Bearer {}",
        '{{"api_key": "{}"}}',
        "{{'client_secret': '{}'}}",
        "postgresql://app:{}@db/main",
        "redis://:{}@cache",
    ]
)


@st.composite
def planted(draw: st.DrawFn) -> tuple[str, str]:
    """``(text, secret)``: a secret in one of the forms it takes, anywhere in some text."""
    secret = draw(_SECRET)
    return draw(_AROUND) + draw(_FORMS).format(secret) + draw(_AROUND), secret


def _nest(leaf: Any, path: list[tuple[str, str]]) -> Any:
    for kind, name in reversed(path):
        leaf = [1, leaf] if kind == "list" else {name: leaf, "other": "x"}
    return leaf


_PATHS = st.lists(
    st.tuples(st.sampled_from(["dict", "list"]), st.sampled_from(["data", "items", "meta"])),
    max_size=6,
)


def _rendered(buffer: io.BytesIO) -> str:
    (line,) = buffer.getvalue().splitlines()
    json.loads(line)  # still one JSON document
    return line.decode()


@settings(max_examples=150, deadline=None)
@given(st.lists(planted(), min_size=4, max_size=4), _PATHS, st.booleans())
def test_a_planted_secret_never_reaches_the_json_line(
    plants: list[tuple[str, str]], path: list[tuple[str, str]], as_key: bool
) -> None:
    (message, _), (error, _), (cause, _), (nested, _) = plants
    buffer = io.BytesIO()
    configure_logging(LogSettings(console=None), outputs=[StreamOutput(buffer)])
    leaf = {nested: 1} if as_key else nested
    try:
        _fail_with(error, cause=cause)
    except GatewayError:
        get_logger("tests.property").exception(message, context=_nest(leaf, path))
    line = _rendered(buffer)
    for _, secret in plants:
        assert secret not in line


@settings(max_examples=150, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["password", "user", "note", "pin", "event", "a=b", "token=x"])
        | st.text(max_size=8),
        st.text(max_size=12)
        | st.sampled_from(
            ["password=hunter2", "Bearer eyJ0.e30.c2ln", "kim@example.com", "010-1234-5678"]
        )
        | st.binary(max_size=12)
        | st.integers(),
        max_size=6,
    ),
    st.sampled_from([frozenset(), frozenset({"email", "phone", "rrn"})]),
)
def test_field_masker_agrees_with_mask_sensitive_on_text(
    fields: dict[str, Any], pii: frozenset[Any]
) -> None:
    masker = FieldMasker(DEFAULT_SENSITIVE_KEYS, "***", pii)
    expected = mask_sensitive(fields, pii=pii)
    assert masker(fields) == expected
    assert masker(fields) == expected  # the memoized second pass too

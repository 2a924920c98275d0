import math
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aegis.core.errors import InvalidInputError
from aegis.core.utils.datetime import (
    EPOCH_MILLISECONDS_THRESHOLD,
    format_datetime,
    parse_datetime,
    to_timezone,
    to_utc,
    utcnow,
)

SEOUL = ZoneInfo("Asia/Seoul")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
NEW_YEAR = datetime(2026, 1, 1, tzinfo=UTC)


def _rule(caught: pytest.ExceptionInfo[InvalidInputError]) -> tuple[str | None, str]:
    return caught.value.field, caught.value.errors[0].type


def test_utcnow_is_aware_utc_and_current() -> None:
    now = utcnow()
    assert now.tzinfo is UTC
    assert abs(now - datetime.now(UTC)) < timedelta(seconds=5)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-01T00:00:00Z", NEW_YEAR),
        ("2026-01-01t00:00:00z", NEW_YEAR),
        ("2026-01-01 09:00:00+09:00", NEW_YEAR),
        ("2025-12-31T19:00:00-05:00", NEW_YEAR),
        ("20260101T000000Z", NEW_YEAR),
        ("  2026-01-01T00:00:00.5Z ", NEW_YEAR + timedelta(milliseconds=500)),
        ("2026-01-01T00:00:00.123456789Z", NEW_YEAR + timedelta(microseconds=123456)),
    ],
)
def test_iso_8601_and_rfc_3339_text_is_parsed_to_utc(text: str, expected: datetime) -> None:
    parsed = parse_datetime(text)
    assert parsed == expected
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1767225600, NEW_YEAR),
        (1767225600.25, NEW_YEAR + timedelta(milliseconds=250)),
        (1767225600000, NEW_YEAR),
        ("1767225600", NEW_YEAR),
        ("1767225600000", NEW_YEAR),
        ("1767225600.123456", NEW_YEAR + timedelta(microseconds=123456)),
        (0, datetime(1970, 1, 1, tzinfo=UTC)),
        (-86400, datetime(1969, 12, 31, tzinfo=UTC)),
        (EPOCH_MILLISECONDS_THRESHOLD - 1, datetime(5138, 11, 16, 9, 46, 39, tzinfo=UTC)),
        (EPOCH_MILLISECONDS_THRESHOLD, datetime(1973, 3, 3, 9, 46, 40, tzinfo=UTC)),
    ],
)
def test_epoch_seconds_and_milliseconds_are_told_apart_by_magnitude(
    value: int | float | str, expected: datetime
) -> None:
    assert parse_datetime(value) == expected


def test_aware_datetimes_are_converted_to_utc() -> None:
    assert parse_datetime(datetime(2026, 1, 1, 9, tzinfo=SEOUL)) == NEW_YEAR


def test_naive_input_is_refused_without_a_default_zone() -> None:
    for naive in ("2026-01-01T00:00:00", "2026-01-01", datetime(2026, 1, 1)):
        with pytest.raises(InvalidInputError) as caught:
            parse_datetime(naive, field="starts_at")
        assert _rule(caught) == ("starts_at", "timezone_aware")
        assert "default_tz" in caught.value.message


def test_naive_input_takes_the_default_zone_by_name_or_tzinfo() -> None:
    assert parse_datetime("2026-01-01T09:00:00", default_tz="Asia/Seoul") == NEW_YEAR
    assert parse_datetime("2026-01-01", default_tz=UTC) == NEW_YEAR
    assert parse_datetime("2026-01-01T00:00:00", default_tz="UTC") == NEW_YEAR


def test_a_default_zone_does_not_override_an_explicit_offset() -> None:
    assert parse_datetime("2026-01-01T00:00:00Z", default_tz="Asia/Seoul") == NEW_YEAR


@pytest.mark.parametrize("text", ["yesterday", "2026-13-01T00:00:00Z", "2026-01-01T24:00Z", ""])
def test_unparseable_text_is_refused_naming_the_expected_form(text: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        parse_datetime(text)
    assert _rule(caught) == ("datetime", "datetime_format")
    assert "2026-01-02T03:04:05Z" in caught.value.message


def test_overlong_text_is_refused_without_parsing() -> None:
    with pytest.raises(InvalidInputError) as caught:
        parse_datetime("2026-01-01T00:00:00Z" + " " * 10 + "x" * 100)
    assert _rule(caught) == ("datetime", "datetime_format")


@pytest.mark.parametrize("value", [10**20, -(10**20), float("inf"), float("nan"), "9" * 40])
def test_epoch_numbers_outside_the_calendar_are_refused(value: int | float | str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        parse_datetime(value)
    assert _rule(caught) == ("datetime", "datetime_range")


@pytest.mark.parametrize("value", [True, None, b"2026-01-01", [2026]])
def test_other_types_are_refused(value: object) -> None:
    with pytest.raises(InvalidInputError) as caught:
        parse_datetime(value)  # type: ignore[arg-type]
    assert _rule(caught) == ("datetime", "type")


def test_an_unknown_default_zone_is_refused() -> None:
    with pytest.raises(InvalidInputError) as caught:
        parse_datetime("2026-01-01T00:00:00", default_tz="Mars/Olympus")
    assert _rule(caught) == ("timezone", "unknown_timezone")


def test_to_utc_converts_and_refuses_naive_or_out_of_range() -> None:
    assert to_utc(datetime(2026, 1, 1, 9, tzinfo=SEOUL)) == NEW_YEAR
    with pytest.raises(InvalidInputError) as caught:
        to_utc(datetime(2026, 1, 1))
    assert _rule(caught) == ("datetime", "timezone_aware")
    with pytest.raises(InvalidInputError) as caught:
        to_utc(datetime.min.replace(tzinfo=timezone(timedelta(hours=1))))
    assert _rule(caught) == ("datetime", "datetime_range")
    with pytest.raises(InvalidInputError) as caught:
        to_utc("2026-01-01")  # type: ignore[arg-type]
    assert _rule(caught) == ("datetime", "type")


def test_format_datetime_writes_utc_with_z_and_six_fraction_digits() -> None:
    moment = datetime(2026, 1, 2, 12, 4, 5, 123456, tzinfo=SEOUL)
    assert format_datetime(moment) == "2026-01-02T03:04:05.123456Z"
    assert format_datetime(NEW_YEAR) == "2026-01-01T00:00:00.000000Z"
    assert format_datetime(NEW_YEAR, timespec="seconds") == "2026-01-01T00:00:00Z"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (1767225600.25, "2026-01-01T00:00:00.250000Z"),
        (1767225600.0, "2026-01-01T00:00:00.000000Z"),
        (1767225659.999999, "2026-01-01T00:00:59.999999Z"),
        (-1.5, "1969-12-31T23:59:58.500000Z"),
    ],
)
def test_format_datetime_writes_unix_seconds_like_the_same_datetime(
    seconds: float, text: str
) -> None:
    assert format_datetime(seconds) == text
    assert format_datetime(seconds) == text  # the second's text, now cached
    assert format_datetime(_EPOCH + timedelta(seconds=seconds)) == text


def test_format_datetime_of_unix_seconds_honours_timespec_and_refuses_non_finite_values() -> None:
    assert format_datetime(1767225600.25, timespec="milliseconds") == "2026-01-01T00:00:00.250Z"
    for value in (math.nan, math.inf, 1e20):
        with pytest.raises(InvalidInputError) as caught:
            format_datetime(value)
        assert _rule(caught) == ("datetime", "datetime_range")


def test_format_datetime_refuses_naive_values_and_unknown_timespecs() -> None:
    with pytest.raises(InvalidInputError):
        format_datetime(datetime(2026, 1, 1))
    with pytest.raises(InvalidInputError) as caught:
        format_datetime(NEW_YEAR, timespec="fortnights")
    assert _rule(caught) == ("timespec", "choice")


def test_to_timezone_converts_to_a_named_zone() -> None:
    local = to_timezone(datetime(2026, 1, 1, 15, tzinfo=UTC), "Asia/Seoul")
    assert local.isoformat() == "2026-01-02T00:00:00+09:00"
    assert to_timezone(local, UTC) == datetime(2026, 1, 1, 15, tzinfo=UTC)


@pytest.mark.parametrize("zone", ["Mars/Olympus", "", "../etc/passwd", "/etc/passwd", "Asia"])
def test_to_timezone_refuses_unknown_zones(zone: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        to_timezone(NEW_YEAR, zone)
    assert _rule(caught) == ("timezone", "unknown_timezone")


def test_to_timezone_refuses_naive_and_out_of_range_values() -> None:
    with pytest.raises(InvalidInputError) as caught:
        to_timezone(datetime(2026, 1, 1), "Asia/Seoul")
    assert _rule(caught) == ("datetime", "timezone_aware")
    with pytest.raises(InvalidInputError) as caught:
        to_timezone(datetime.max.replace(tzinfo=UTC), "Asia/Seoul")
    assert _rule(caught) == ("datetime", "datetime_range")


_AWARE = st.datetimes(
    min_value=datetime(1, 1, 2),
    max_value=datetime(9999, 12, 30),
    timezones=st.sampled_from([UTC, SEOUL, ZoneInfo("America/New_York"), UTC]),
)


@settings(max_examples=300, deadline=None)
@given(_AWARE)
def test_format_then_parse_returns_the_same_instant(moment: datetime) -> None:
    parsed = parse_datetime(format_datetime(moment))
    # Compared in UTC: PEP 495 makes a time in a DST gap unequal to every other zone's time.
    assert parsed == moment.astimezone(UTC)
    assert parsed.tzinfo is UTC


@settings(max_examples=300, deadline=None)
@given(_AWARE)
def test_isoformat_in_any_zone_parses_to_the_same_instant(moment: datetime) -> None:
    assert parse_datetime(moment.isoformat()) == moment.astimezone(UTC)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=EPOCH_MILLISECONDS_THRESHOLD - 1))
def test_epoch_seconds_and_their_milliseconds_parse_to_the_same_instant(seconds: int) -> None:
    from_seconds = parse_datetime(seconds)
    assert from_seconds == datetime.fromtimestamp(seconds, UTC)
    if seconds * 1000 >= EPOCH_MILLISECONDS_THRESHOLD:
        assert parse_datetime(seconds * 1000) == from_seconds
        assert parse_datetime(str(seconds * 1000)) == from_seconds

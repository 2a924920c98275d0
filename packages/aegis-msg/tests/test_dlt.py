"""Dead letters without a broker: header decoding, selections, settings and usage errors."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aegis.core.errors import InvalidInputError
from aegis.msg import DeadLetter, DeadLetterSelection
from aegis.msg._cli import main
from aegis.msg._dlt import header_number
from aegis.msg._dlt_cli import kafka_settings
from aegis.msg._dlt_selection import OffsetRange, parse_position, parse_time

NOW = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
DEAD_AT_MS = int(NOW.timestamp() * 1000)


@dataclass
class FakeMessage:
    """A consumed message with confluent-kafka's accessors."""

    value_: bytes | None
    headers_: list[tuple[str, bytes]] = field(default_factory=list)
    topic_: str = "orders.DLT"
    partition_: int = 1
    offset_: int = 7
    key_: bytes | None = b"o-1"
    timestamp_: int = DEAD_AT_MS

    def topic(self) -> str:
        return self.topic_

    def partition(self) -> int:
        return self.partition_

    def offset(self) -> int:
        return self.offset_

    def key(self) -> bytes | None:
        return self.key_

    def value(self) -> bytes | None:
        return self.value_

    def headers(self) -> Sequence[tuple[str, bytes]]:
        return self.headers_

    def timestamp(self) -> tuple[int, int]:
        return (1, self.timestamp_)


SPRING_HEADERS = [
    ("content-type", b"application/json"),
    ("ce_type", b"shop.order.placed"),
    ("ce_id", b"evt-1"),
    ("kafka_dlt-original-topic", b"orders"),
    ("kafka_dlt-original-partition", (2).to_bytes(4, "big")),
    ("kafka_dlt-original-offset", (41).to_bytes(8, "big")),
    ("kafka_dlt-original-timestamp", (DEAD_AT_MS - 5000).to_bytes(8, "big")),
    ("kafka_dlt-original-consumer-group", b"billing"),
    ("kafka_dlt-exception-fqcn", b"shop.billing.GatewayError"),
    ("kafka_dlt-exception-message", b"card declined"),
    ("kafka_dlt-exception-stacktrace", b"Traceback ...\nGatewayError: card declined\n"),
    ("retry_topic-attempts", (4).to_bytes(4, "big")),
]


def letter(**changes: object) -> DeadLetter:
    message = FakeMessage(b'{"order_id": "o-1"}', list(SPRING_HEADERS))
    for name, value in changes.items():
        setattr(message, f"{name}_", value)
    return DeadLetter.from_message(message)


class TestDeadLetter:
    def test_spring_headers_are_decoded_from_their_binary_encodings(self) -> None:
        dead = letter()
        assert (dead.topic, dead.position, dead.key) == ("orders.DLT", "1:7", b"o-1")
        assert dead.timestamp == NOW
        assert (dead.event_type, dead.event_id) == ("shop.order.placed", "evt-1")
        assert (dead.original_topic, dead.original_partition, dead.original_offset) == (
            "orders",
            2,
            41,
        )
        assert dead.original_timestamp == NOW - timedelta(seconds=5)
        assert dead.consumer_group == "billing"
        assert dead.exception_class == "shop.billing.GatewayError"
        assert dead.exception_message == "card declined"
        assert dead.stacktrace is not None
        assert dead.stacktrace.endswith("GatewayError: card declined\n")
        assert dead.attempts == 4
        assert dead.replayed_from == []
        assert dead.payload() == {"order_id": "o-1"}

    def test_shown_headers_turn_binary_numbers_and_times_into_text(self) -> None:
        shown = dict(letter().decoded_headers())
        assert shown["kafka_dlt-original-partition"] == "2"
        assert shown["kafka_dlt-original-offset"] == "41"
        assert shown["kafka_dlt-original-timestamp"] == (
            f"{DEAD_AT_MS - 5000} (2026-03-04T05:06:02.000Z)"
        )
        assert shown["retry_topic-attempts"] == "4"
        assert shown["ce_id"] == "evt-1"

    def test_a_structured_event_names_its_type_and_id_from_the_body(self) -> None:
        body = {"specversion": "1.0", "type": "shop.order.placed", "id": "evt-9", "data": {}}
        dead = letter(
            value=json.dumps(body).encode(),
            headers=[("content-type", b"application/cloudevents+json; charset=utf-8")],
        )
        assert (dead.event_type, dead.event_id) == ("shop.order.placed", "evt-9")
        assert dead.original_topic is None
        assert dead.summary()["original_offset"] is None

    def test_payloads_that_are_not_json_are_shown_as_text_or_base64(self) -> None:
        assert letter(value=b"{not json").payload() == "{not json"
        assert letter(value=b"\xff\x00").payload() == {"base64": "/wA="}
        assert letter(value=None).payload() is None

    def test_a_header_that_is_not_utf8_is_shown_in_hex(self) -> None:
        dead = letter(headers=[("blob", b"\xff\xfe")])
        assert dead.decoded_headers() == [("blob", "0xfffe")]

    def test_replay_hops_are_listed_oldest_first(self) -> None:
        hops = [
            ("aegis_dlt-replayed-from", b"orders.DLT:0:3"),
            ("aegis_dlt-replayed-from", b"orders.DLT:0:9"),
        ]
        assert letter(headers=SPRING_HEADERS + hops).replayed_from == [
            "orders.DLT:0:3",
            "orders.DLT:0:9",
        ]

    @pytest.mark.parametrize(
        ("raw", "number"),
        [
            ((7).to_bytes(4, "big"), 7),
            ((-1).to_bytes(8, "big", signed=True), -1),
            (b"123", 123),
            (b"12a", None),
            (None, None),
        ],
    )
    def test_integer_headers_are_read_as_spring_writes_them_or_as_text(
        self, raw: bytes | None, number: int | None
    ) -> None:
        assert header_number(raw) == number


class TestPositions:
    @given(st.integers(0, 2**31), st.integers(0, 2**62))
    def test_one_record(self, partition: int, offset: int) -> None:
        assert parse_position(f"{partition}:{offset}") == OffsetRange(partition, offset, offset)

    @given(st.integers(0, 100), st.integers(0, 2**40), st.integers(0, 2**40))
    def test_a_range_is_inclusive(self, partition: int, first: int, extra: int) -> None:
        last = first + extra
        assert parse_position(f"{partition}:{first}-{last}") == OffsetRange(partition, first, last)
        assert parse_position(f"{partition}:{first}-") == OffsetRange(partition, first, None)

    @pytest.mark.parametrize("text", ["", "0", "0:", ":1", "a:1", "0:1:2", "-1:0", "0:x", "0:5-2"])
    def test_malformed_positions_name_the_expected_form(self, text: str) -> None:
        with pytest.raises(InvalidInputError, match=r"PARTITION:OFFSET|ends before it starts"):
            parse_position(text)


class TestTimes:
    def test_iso_times_with_and_without_an_offset(self) -> None:
        assert parse_time("2026-03-04T05:06:07Z") == NOW
        assert parse_time("2026-03-04T14:06:07+09:00") == NOW
        assert parse_time("2026-03-04T05:06:07") == NOW  # no offset: UTC

    @pytest.mark.parametrize(
        ("age", "delta"),
        [
            ("90s", timedelta(seconds=90)),
            ("30m", timedelta(minutes=30)),
            ("2h", timedelta(hours=2)),
            ("1d", timedelta(days=1)),
        ],
    )
    def test_an_age_counts_back_from_now(self, age: str, delta: timedelta) -> None:
        assert parse_time(age, now=NOW) == NOW - delta

    @pytest.mark.parametrize("text", ["yesterday", "2h ago", "-2h", "2026-13-01T00:00:00Z"])
    def test_other_text_is_refused_with_the_accepted_forms(self, text: str) -> None:
        with pytest.raises(InvalidInputError, match="expected ISO 8601"):
            parse_time(text)


class TestSelection:
    def test_positions_are_alternatives_and_other_kinds_must_all_hold(self) -> None:
        selection = DeadLetterSelection(
            positions=(parse_position("1:5-7"), parse_position("1:20")),
            event_ids=frozenset({"evt-1"}),
        )
        assert selection.matches(letter(offset=7))
        assert selection.matches(letter(offset=20))
        assert not selection.matches(letter(offset=8))
        assert not selection.matches(letter(offset=7, partition=0))
        assert not selection.matches(letter(offset=7, headers=[("ce_id", b"evt-2")]))

    def test_a_position_holds_only_in_its_own_partition(self) -> None:
        positions = tuple(map(parse_position, ["0:5-7", "1:1-3", "1:10-12"]))
        selection = DeadLetterSelection(positions=positions)
        assert selection.matches(letter(partition=0, offset=6))
        assert not selection.matches(letter(partition=1, offset=6))
        assert selection.matches(letter(partition=1, offset=11))

    def test_offsets_and_times_bound_every_partition(self) -> None:
        selection = DeadLetterSelection(
            from_offset=5, to_offset=9, since=NOW - timedelta(minutes=1), until=NOW
        )
        assert selection.matches(letter(offset=5, timestamp=DEAD_AT_MS - 60_000))
        assert not selection.matches(letter(offset=4, timestamp=DEAD_AT_MS - 1))
        assert not selection.matches(letter(offset=10, timestamp=DEAD_AT_MS - 1))
        assert not selection.matches(letter(offset=9, timestamp=DEAD_AT_MS))  # until: before
        assert not selection.matches(letter(offset=9, timestamp=DEAD_AT_MS - 60_001))

    def test_bounds_say_which_offsets_of_a_partition_to_read(self) -> None:
        selection = DeadLetterSelection(
            positions=(parse_position("0:3-"), parse_position("2:4-6")), to_offset=10
        )
        assert selection.bounds(0) == (3, 10)
        assert selection.bounds(1) is None
        assert selection.bounds(2) == (4, 6)
        assert (
            DeadLetterSelection(from_offset=8, positions=(parse_position("0:2-5"),)).bounds(0)
            is None
        )
        assert DeadLetterSelection().bounds(5) == (0, None)

    def test_only_the_empty_selection_is_everything(self) -> None:
        assert DeadLetterSelection().is_everything
        assert DeadLetterSelection(limit=5).is_everything
        assert not DeadLetterSelection(event_ids=frozenset({"x"})).is_everything
        assert not DeadLetterSelection(from_offset=0).is_everything

    @pytest.mark.parametrize(
        ("options", "message"),
        [
            ({"from_offset": -1}, "from_offset must not be negative"),
            ({"limit": 0}, "limit must be at least 1"),
            ({"from_offset": 5, "to_offset": 4}, "from_offset 5 is above to_offset 4"),
            ({"since": NOW, "until": NOW}, "is not before until"),
        ],
    )
    def test_contradictions_are_refused(self, options: dict[str, object], message: str) -> None:
        with pytest.raises(InvalidInputError, match=message):
            DeadLetterSelection(**options)  # type: ignore[arg-type]


class TestSettings:
    def args(self, bootstrap: str | None = None, *client_config: str) -> argparse.Namespace:
        return argparse.Namespace(bootstrap=bootstrap, client_config=list(client_config))

    def test_variables_name_the_kafka_settings_fields(self) -> None:
        environ = {
            "AEGIS_MSG_KAFKA__BOOTSTRAP_SERVERS": "k1:9092,k2:9092",
            "AEGIS_MSG_KAFKA__SECURITY_PROTOCOL": "SASL_SSL",
            "AEGIS_MSG_KAFKA__SASL_MECHANISM": "SCRAM-SHA-512",
            "AEGIS_MSG_KAFKA__SASL_USERNAME": "ops",
            "AEGIS_MSG_KAFKA__SASL_PASSWORD": "s3cret",
            "AEGIS_MSG_KAFKA__CONSUMER": '{"fetch.max.bytes": 1048576}',
        }
        settings = kafka_settings(self.args(None, "ssl.ca.location=/etc/ca.pem"), environ)
        config = settings.client_config()
        assert config["bootstrap.servers"] == "k1:9092,k2:9092"
        assert config["security.protocol"] == "SASL_SSL"
        assert config["sasl.mechanism"] == "SCRAM-SHA-512"
        assert (config["sasl.username"], config["sasl.password"]) == ("ops", "s3cret")
        assert settings.consumer == {"fetch.max.bytes": 1048576, "ssl.ca.location": "/etc/ca.pem"}
        assert settings.producer == {"ssl.ca.location": "/etc/ca.pem"}
        assert settings.client_id == "aegis-msg-dlt"

    def test_the_option_wins_over_the_variable(self) -> None:
        environ = {"AEGIS_MSG_KAFKA__BOOTSTRAP_SERVERS": "from-env:9092"}
        assert kafka_settings(self.args("cli:9092"), environ).bootstrap_servers == "cli:9092"

    @pytest.mark.parametrize(
        ("environ", "message"),
        [
            ({"AEGIS_MSG_KAFKA__SECURITY_PROTOCOL": "TLS"}, "AEGIS_MSG_KAFKA__SECURITY_PROTOCOL"),
            ({"AEGIS_MSG_KAFKA__CONSUMER": "{"}, "AEGIS_MSG_KAFKA__CONSUMER is not a JSON"),
            ({"AEGIS_MSG_KAFKA__PRODUCER": "[1]"}, "AEGIS_MSG_KAFKA__PRODUCER is not a JSON"),
            ({"AEGIS_MSG_KAFKA__DELIVERY_TIMEOUT": "-1"}, "delivery_timeout"),
        ],
    )
    def test_a_bad_variable_is_named(self, environ: dict[str, str], message: str) -> None:
        with pytest.raises(InvalidInputError, match=message):
            kafka_settings(self.args(), environ)


class TestUsage:
    """Usage errors exit with status 2 and one message naming what was wrong; no broker needed."""

    @pytest.mark.parametrize(
        ("argv", "message"),
        [
            (["dlt", "show", "t.DLT", "0-1"], "'0-1' is not a record position"),
            (["dlt", "show", "t.DLT", "0:1-3"], "show takes one record"),
            (["dlt", "list", "t.DLT", "x:1"], "'x:1' is not a record position"),
            (["dlt", "list", "t.DLT", "--limit", "0"], "'0' is not a whole number of at least 1"),
            (["dlt", "list", "t.DLT", "--from-offset", "-3"], "argument --from-offset"),
            (["dlt", "list", "t.DLT", "--since", "soon"], "'soon' is not a time"),
            (["dlt", "list", "t.DLT", "--timeout", "0"], "'0' is not a positive number"),
            (["dlt", "list", "t.DLT", "--from-offset", "9", "--to-offset", "3"], "above"),
            (["dlt", "list", "t.DLT", "-X", "no-equals"], "expected KEY=VALUE"),
            (["dlt", "purge", "t.DLT"], "invalid choice: 'purge'"),
            (["dlt"], "required: {list,show,replay}"),
        ],
    )
    def test_bad_arguments(
        self, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
        assert message in capsys.readouterr().err

    def test_replay_without_a_selection_asks_for_all(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert main(["dlt", "replay", "t.DLT", "--bootstrap", "127.0.0.1:1"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1
        assert "replay needs a selection" in err
        assert "--all" in err

    def test_a_setting_librdkafka_refuses_is_a_usage_error(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        argv = ["dlt", "list", "t.DLT", "--bootstrap", "127.0.0.1:1", "-X", "no.such.key=1"]
        assert main(argv) == 2
        assert capsys.readouterr().err == (
            "aegis-msg dlt: error: Kafka client settings: No such configuration property: "
            '"no.such.key"\n'
        )

"""RetryPolicy, retry-topic names and the Spring Kafka dead-letter headers, byte for byte.

Topic names and header encodings are a wire contract: a renamed retry topic strands the messages
already in it, and Spring's DLT tools read the headers in exactly these encodings.
"""

from __future__ import annotations

import time
from dataclasses import FrozenInstanceError, dataclass, field

import pytest

from aegis.core.errors import ConfigurationError, InvalidInputError
from aegis.msg import RetryPolicy, StoredMessage
from aegis.msg._retry import forwarded_headers, header_int, seconds_until
from aegis.msg._transport import Headers

GROUP = "billing"
# A broker timestamp and an offset past 32 bits: the 8-byte fields must hold them.
TIMESTAMP_MS = 1_700_000_000_123
OFFSET = 2**40 + 5


@dataclass
class Received:
    """A consumed message with a timestamp type of choice (confluent-kafka's accessors)."""

    topic_name: str | None = "orders"
    partition_number: int | None = 3
    offset_number: int | None = OFFSET
    header_list: Headers = field(default_factory=list)
    timestamp_type: int = 1
    timestamp_ms: int = TIMESTAMP_MS

    def topic(self) -> str | None:
        return self.topic_name

    def partition(self) -> int | None:
        return self.partition_number

    def offset(self) -> int | None:
        return self.offset_number

    def key(self) -> bytes | None:
        return None

    def value(self) -> bytes:
        return b"{}"

    def headers(self) -> Headers:
        return self.header_list

    def timestamp(self) -> tuple[int, int]:
        return (self.timestamp_type, self.timestamp_ms)


def failure(message: str = "cannot book -1") -> ValueError:
    """A raised (so it has a traceback) ValueError without cause or context."""
    try:
        raise ValueError(message)
    except ValueError as exc:
        return exc


class TestRetryPolicy:
    def test_defaults_are_the_documented_ones(self) -> None:
        """Three attempts from 0.1 s doubling up to 5 s, retry topics after 5 s and 30 s."""
        policy = RetryPolicy()
        assert (policy.attempts, policy.backoff, policy.multiplier) == (3, 0.1, 2.0)
        assert (policy.max_backoff, policy.topic_delays) == (5.0, (5.0, 30.0))
        assert policy.not_retryable == (InvalidInputError,)
        assert policy.dead_letter_suffix == ".DLT"

    @pytest.mark.parametrize("attempts", [0, -1])
    def test_fewer_than_one_attempt_is_refused(self, attempts: int) -> None:
        with pytest.raises(ConfigurationError, match="attempts must be at least 1"):
            RetryPolicy(attempts=attempts)

    @pytest.mark.parametrize("backoff", [-1.0, -0.5, -1e-9])
    def test_a_negative_backoff_is_refused(self, backoff: float) -> None:
        with pytest.raises(ConfigurationError, match="delays must be positive"):
            RetryPolicy(backoff=backoff)

    @pytest.mark.parametrize("delays", [(0.0,), (0.5, 0.0), (5.0, -1.0), (-0.5,)])
    def test_a_retry_topic_delay_that_is_not_positive_is_refused(
        self, delays: tuple[float, ...]
    ) -> None:
        with pytest.raises(ConfigurationError, match="delays must be positive"):
            RetryPolicy(topic_delays=delays)

    def test_the_smallest_valid_values_are_accepted(self) -> None:
        """One attempt, no backoff, a sub-second retry topic, or none at all."""
        policy = RetryPolicy(attempts=1, backoff=0.0, topic_delays=(0.5,))
        assert (policy.attempts, policy.backoff, policy.topic_delays) == (1, 0.0, (0.5,))
        assert RetryPolicy(topic_delays=()).retry_topics("orders") == []

    def test_a_policy_is_immutable_and_hashable(self) -> None:
        """Subscribers share one policy: nobody may change it under the others."""
        policy = RetryPolicy()
        with pytest.raises(FrozenInstanceError):
            policy.attempts = 10  # type: ignore[misc]
        assert hash(policy) == hash(RetryPolicy())

    def test_backoff_grows_by_the_multiplier_up_to_the_cap(self) -> None:
        policy = RetryPolicy()
        waits = [policy.backoff_for(retry) for retry in range(8)]
        assert waits == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0])
        other = RetryPolicy(backoff=1, multiplier=3, max_backoff=20)
        assert [other.backoff_for(retry) for retry in range(4)] == [1.0, 3.0, 9.0, 20.0]
        assert all(type(other.backoff_for(retry)) is float for retry in range(4))

    def test_retry_topics_are_named_by_their_delay_in_milliseconds(self) -> None:
        assert RetryPolicy().retry_topics("orders") == ["orders-retry-5000", "orders-retry-30000"]
        policy = RetryPolicy(topic_delays=(0.2, 1.5, 0.0015))
        assert policy.retry_topics("a.b") == ["a.b-retry-200", "a.b-retry-1500", "a.b-retry-2"]

    def test_the_dead_letter_topic_is_the_topic_and_the_suffix(self) -> None:
        assert RetryPolicy().dead_letter_topic("orders") == "orders.DLT"
        assert RetryPolicy(dead_letter_suffix="-dlq").dead_letter_topic("orders") == "orders-dlq"


class TestForwardedHeaders:
    def test_first_forward_writes_springs_headers_in_springs_encodings(self) -> None:
        message = Received(header_list=[("ce_id", b"42"), ("traceparent", b"00-ab")])
        error = failure()
        headers = forwarded_headers(message, error, group_id=GROUP, attempts=3)
        names = [name for name, _ in headers]
        assert names == [
            "ce_id",
            "traceparent",
            "kafka_dlt-original-topic",
            "kafka_dlt-original-partition",
            "kafka_dlt-original-offset",
            "kafka_dlt-original-timestamp",
            "kafka_dlt-original-timestamp-type",
            "kafka_dlt-original-consumer-group",
            "kafka_dlt-exception-fqcn",
            "kafka_dlt-exception-message",
            "kafka_dlt-exception-stacktrace",
            "retry_topic-attempts",
        ]
        values = dict(headers)
        assert values["ce_id"] == b"42"
        assert values["kafka_dlt-original-topic"] == b"orders"
        # Spring: partition a 4-byte int, offset and timestamp 8-byte longs, big-endian.
        assert values["kafka_dlt-original-partition"] == b"\x00\x00\x00\x03"
        assert values["kafka_dlt-original-offset"] == b"\x00\x00\x01\x00\x00\x00\x00\x05"
        assert values["kafka_dlt-original-timestamp"] == TIMESTAMP_MS.to_bytes(8, "big")
        assert values["kafka_dlt-original-timestamp-type"] == b"CreateTime"
        assert values["kafka_dlt-original-consumer-group"] == b"billing"
        assert values["kafka_dlt-exception-fqcn"] == b"ValueError"
        assert values["kafka_dlt-exception-message"] == b"cannot book -1"
        stack = values["kafka_dlt-exception-stacktrace"].decode()
        assert stack.startswith("Traceback (most recent call last):\n")
        assert "in failure" in stack
        assert stack.endswith("ValueError: cannot book -1\n")
        assert values["retry_topic-attempts"] == b"\x00\x00\x00\x03"

    @pytest.mark.parametrize(
        ("timestamp_type", "name"),
        [
            (0, b"NoTimestampType"),
            (1, b"CreateTime"),
            (2, b"LogAppendTime"),
            (7, b"NoTimestampType"),
        ],
    )
    def test_the_timestamp_type_is_springs_name_for_it(
        self, timestamp_type: int, name: bytes
    ) -> None:
        headers = dict(
            forwarded_headers(
                Received(timestamp_type=timestamp_type), failure(), group_id=GROUP, attempts=1
            )
        )
        assert headers["kafka_dlt-original-timestamp-type"] == name

    def test_negative_and_missing_positions_are_encoded_as_signed_integers(self) -> None:
        message = Received(
            topic_name=None, partition_number=None, offset_number=None, timestamp_ms=-1
        )
        headers = dict(forwarded_headers(message, failure(), group_id=GROUP, attempts=1))
        assert headers["kafka_dlt-original-topic"] == b""
        assert headers["kafka_dlt-original-partition"] == bytes(4)
        assert headers["kafka_dlt-original-offset"] == bytes(8)
        assert headers["kafka_dlt-original-timestamp"] == b"\xff" * 8
        negative = dict(
            forwarded_headers(
                Received(partition_number=-1, offset_number=-2),
                failure(),
                group_id=GROUP,
                attempts=1,
            )
        )
        assert negative["kafka_dlt-original-partition"] == b"\xff\xff\xff\xff"
        assert negative["kafka_dlt-original-offset"] == (-2).to_bytes(8, "big", signed=True)

    def test_originals_of_the_first_delivery_survive_a_retry_topic(self) -> None:
        """A message from a retry topic keeps the first topic, offset and group; old exception
        headers are replaced, not repeated."""
        first = forwarded_headers(
            Received(), failure("first"), group_id=GROUP, attempts=3, due_at=10.0
        )
        from_retry = Received(
            topic_name="orders-retry-5000",
            partition_number=0,
            offset_number=9,
            header_list=first,
            timestamp_type=2,
        )
        headers = forwarded_headers(from_retry, failure("second"), group_id="other", attempts=4)
        originals = [(n, v) for n, v in first if n.startswith("kafka_dlt-original-")]
        assert [(n, v) for n, v in headers if n.startswith("kafka_dlt-original-")] == originals
        names = [name for name, _ in headers]
        assert len(names) == len(set(names))
        values = dict(headers)
        assert values["kafka_dlt-exception-message"] == b"second"
        assert values["retry_topic-attempts"] == b"\x00\x00\x00\x04"
        assert "retry_topic-backoff-timestamp" not in values

    def test_the_cause_names_the_chained_or_the_context_exception(self) -> None:
        class LedgerDownError(Exception):
            pass

        try:
            try:
                raise LedgerDownError("ledger")
            except LedgerDownError as cause:
                raise InvalidInputError("bad amount", field="amount") from cause
        except InvalidInputError as exc:
            chained = exc
        try:
            try:
                raise KeyError("k")
            except KeyError:
                raise ValueError("v")  # noqa: B904 - the implicit context is the point
        except ValueError as exc:
            implicit = exc
        explicit = dict(forwarded_headers(Received(), chained, group_id=GROUP, attempts=1))
        assert explicit["kafka_dlt-exception-fqcn"] == b"aegis.core.errors.InvalidInputError"
        qualified = f"{LedgerDownError.__module__}.{LedgerDownError.__qualname__}".encode()
        assert explicit["kafka_dlt-exception-cause-fqcn"] == qualified
        assert b".<locals>.LedgerDownError" in qualified
        context = forwarded_headers(Received(), implicit, group_id=GROUP, attempts=1)
        assert context[-1] == ("kafka_dlt-exception-cause-fqcn", b"KeyError")
        alone = dict(forwarded_headers(Received(), failure(), group_id=GROUP, attempts=1))
        assert "kafka_dlt-exception-cause-fqcn" not in alone

    def test_the_stack_trace_is_capped_to_its_last_8192_characters(self) -> None:
        long = failure("x" * 20_000 + " end")
        stack = dict(forwarded_headers(Received(), long, group_id=GROUP, attempts=1))[
            "kafka_dlt-exception-stacktrace"
        ]
        assert len(stack) == 8192
        assert stack.endswith(b"x end\n")
        fits = failure("y" * 7000)
        whole = dict(forwarded_headers(Received(), fits, group_id=GROUP, attempts=1))[
            "kafka_dlt-exception-stacktrace"
        ]
        assert whole.startswith(b"Traceback")
        assert len(whole) < 8192

    def test_the_due_time_is_an_8_byte_epoch_millisecond_header(self) -> None:
        headers = forwarded_headers(
            Received(), failure(), group_id=GROUP, attempts=2, due_at=1_700_000_000.5
        )
        assert headers[-1] == (
            "retry_topic-backoff-timestamp",
            (1_700_000_000_500).to_bytes(8, "big"),
        )

    def test_group_and_attempts_are_keyword_only(self) -> None:
        """Two ints side by side: a positional call could swap them unnoticed."""
        with pytest.raises(TypeError):
            forwarded_headers(Received(), failure(), GROUP, 1)  # type: ignore[call-arg]

    def test_a_stored_message_of_the_memory_transport_is_read_the_same_way(self) -> None:
        stored = StoredMessage("orders", 1, 7, None, b"{}", [("ce_id", b"1")], TIMESTAMP_MS)
        headers = dict(forwarded_headers(stored, failure(), group_id=GROUP, attempts=1))
        assert headers["kafka_dlt-original-offset"] == (7).to_bytes(8, "big")
        assert headers["kafka_dlt-original-timestamp-type"] == b"CreateTime"


class TestReadingHeaders:
    def test_an_integer_header_is_big_endian_and_signed_and_the_last_one_wins(self) -> None:
        message = Received(
            header_list=[
                ("retry_topic-attempts", b"\x00\x00\x00\x02"),
                ("n", b"\xff\xff"),
                ("retry_topic-attempts", b"\x00\x00\x01\x00"),
            ]
        )
        assert header_int(message, "retry_topic-attempts") == 256
        assert header_int(message, "n") == -1
        assert header_int(message, "missing") is None

    def test_seconds_until_a_due_time(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(time, "time", lambda: 1_000.0)
        assert seconds_until(1_005_500) == 5.5
        assert seconds_until(1_000_001) == pytest.approx(0.001)
        assert seconds_until(1_000_000) == 0.0
        assert seconds_until(999_000) == 0.0
        assert seconds_until(None) == 0.0

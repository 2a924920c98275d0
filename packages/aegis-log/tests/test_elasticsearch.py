"""ElasticsearchOutput against a local `_bulk` server: batches, partial failures, outages."""

from __future__ import annotations

import calendar
import json
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from aegis.log import (
    ElasticsearchOutput,
    ElasticsearchSettings,
    LogEntry,
    LogSettings,
    configure_logging,
    get_logger,
    shutdown_logging,
)

if TYPE_CHECKING:
    from conftest import Recorder

DAY = 86_400.0
MONDAY = float(calendar.timegm((2026, 1, 5, 0, 0, 0)))


def entry(text: str, created: float = MONDAY + 60) -> LogEntry:
    event = {"event": text}
    return LogEntry(json.dumps(event).encode(), event, 20, created, None)


def settings(url: str, **fields: Any) -> ElasticsearchSettings:
    defaults: dict[str, Any] = {"flush_interval": 0.05, "backoff": 0.01, "timeout": 2.0}
    return ElasticsearchSettings(url=url, **{**defaults, **fields})


def bulk_documents(body: bytes) -> list[tuple[str, dict[str, Any]]]:
    """(index, document) pairs of one `_bulk` body."""
    rows = [json.loads(row) for row in body.splitlines()]
    return [
        (action["index"]["_index"], doc) for action, doc in zip(rows[::2], rows[1::2], strict=True)
    ]


def item_statuses(statuses: list[int]) -> bytes:
    items = [{"index": {"status": status}} for status in statuses]
    return json.dumps({"errors": any(s >= 300 for s in statuses), "items": items}).encode()


def test_lines_arrive_in_bulk_with_an_index_per_day(http_server: tuple[str, Recorder]) -> None:
    url, recorder = http_server
    output = ElasticsearchOutput(settings(url, index_pattern="app-%Y.%m.%d", batch_size=3))
    for text, created in [("a", MONDAY + 1), ("b", MONDAY + 2), ("c", MONDAY + DAY + 3)]:
        output.write(entry(text, created))
    assert output.flush()
    output.close()
    path, headers, body = recorder.requests[0]
    assert path == "/_bulk"
    assert headers["Content-Type"] == "application/x-ndjson"
    assert bulk_documents(body) == [
        ("app-2026.01.05", {"event": "a"}),
        ("app-2026.01.05", {"event": "b"}),
        ("app-2026.01.06", {"event": "c"}),
    ]
    assert output.stats.sent == 3


def test_configured_logging_ships_real_lines_and_flushes_on_shutdown(
    http_server: tuple[str, Recorder],
) -> None:
    url, recorder = http_server
    es = settings(url, flush_interval=60, api_key=SecretStr("key-1"))
    configure_logging(LogSettings(console=None, service_name="users", elasticsearch=es))
    get_logger("tests.es").warning("shipped", password="pw")
    shutdown_logging()  # the interval is a minute: only the shutdown flush can send it
    (request,) = recorder.requests
    _, headers, body = request
    assert headers["Authorization"] == "ApiKey key-1"
    ((index, document),) = bulk_documents(body)
    assert index.startswith("logs-")
    assert document["event"] == "shipped"
    assert document["service_name"] == "users"
    assert document["password"] == "***"


def test_partial_failures_retry_only_the_throttled_items(
    http_server: tuple[str, Recorder],
) -> None:
    url, recorder = http_server
    answers = iter([item_statuses([201, 429, 400, 503]), item_statuses([201, 201])])
    recorder.answer = lambda _body: (200, next(answers))
    output = ElasticsearchOutput(
        settings(url, batch_size=4, username="elastic", password=SecretStr("pw"))
    )
    for text in "abcd":
        output.write(entry(text))
    assert output.flush()
    output.close()
    first, second = recorder.requests
    assert first[1]["Authorization"] == "Basic ZWxhc3RpYzpwdw=="
    assert [doc["event"] for _, doc in bulk_documents(second[2])] == ["b", "d"]
    stats = output.stats
    assert (stats.sent, stats.failed, stats.retried, stats.dropped) == (3, 1, 2, 0)


def test_server_errors_are_retried_with_backoff_then_given_up(
    http_server: tuple[str, Recorder],
) -> None:
    url, recorder = http_server
    recorder.answer = lambda _body: (503, b'{"error": "unavailable"}')
    output = ElasticsearchOutput(settings(url, max_retries=2))
    output.write(entry("lost"))
    recorder.wait_for(3)
    assert output.flush()
    output.close()
    assert len(recorder.requests) == 3
    assert (output.stats.failed, output.stats.retried, output.stats.sent) == (1, 2, 0)


def test_a_refused_batch_is_not_retried(http_server: tuple[str, Recorder]) -> None:
    url, recorder = http_server
    recorder.answer = lambda _body: (401, b'{"error": "unauthorized"}')
    output = ElasticsearchOutput(settings(url))
    output.write(entry("refused"))
    assert output.flush()
    output.close()
    assert len(recorder.requests) == 1
    assert output.stats.failed == 1


def test_an_unreadable_success_answer_counts_as_sent(http_server: tuple[str, Recorder]) -> None:
    url, recorder = http_server
    recorder.answer = lambda _body: (200, b"not json")
    output = ElasticsearchOutput(settings(url))
    output.write(entry("ok"))
    assert output.flush()
    output.close()
    assert output.stats.sent == 1


def test_absent_server_never_blocks_the_logging_call(free_port: int) -> None:
    output = ElasticsearchOutput(
        settings(
            f"http://127.0.0.1:{free_port}", queue_size=100, max_retries=1, shutdown_timeout=0.5
        )
    )
    for number in range(1_000):
        output.write(entry(f"line {number}"))
    output.close()
    stats = output.stats
    assert stats.sent == 0
    assert stats.dropped >= 900  # the queue holds 100: the oldest went first
    assert stats.dropped + stats.failed + stats.queued == 1_000


def test_full_queue_drops_the_oldest_lines(http_server: tuple[str, Recorder]) -> None:
    url, recorder = http_server
    output = ElasticsearchOutput(settings(url, queue_size=3, flush_interval=60, batch_size=10))
    for text in "abcde":
        output.write(entry(text))
    assert output.stats.dropped == 2
    assert output.stats.queued == 3
    assert output.flush()
    output.close()
    assert [doc["event"] for _, doc in bulk_documents(recorder.requests[0][2])] == ["c", "d", "e"]


def test_url_path_prefix_is_kept(http_server: tuple[str, Recorder]) -> None:
    url, recorder = http_server
    output = ElasticsearchOutput(settings(f"{url}/es/"))
    output.write(entry("prefixed"))
    assert output.flush()
    output.close()
    assert recorder.requests[0][0] == "/es/_bulk"


def test_flush_gives_up_after_its_timeout(free_port: int) -> None:
    output = ElasticsearchOutput(
        settings(f"http://127.0.0.1:{free_port}", max_retries=20, backoff=5, shutdown_timeout=0)
    )
    output.write(entry("stuck"))
    assert output.flush(timeout=0.2) is False
    output.close()
    assert output.stats.failed == 1

"""A background shipper to Elasticsearch's ``_bulk`` API that never blocks the logging call.

The logging thread only appends to a bounded deque; one daemon thread batches, sends, retries
with backoff and counts what it had to give up. When Elasticsearch is slow or down, the queue
fills and the oldest lines go first, counted in ``stats.dropped``.
"""

from __future__ import annotations

import base64
import http.client
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

import orjson

from aegis.log._pipeline import PIPELINE, LogEntry
from aegis.log._settings import ElasticsearchSettings

# Item statuses worth sending again: throttling and server-side trouble. Anything else
# (mapping errors, 400) fails the same way every time.
_RETRYABLE: Final = frozenset({429, 500, 502, 503, 504})
_DAY: Final = 86_400


@dataclass(frozen=True)
class ShipperStats:
    """Counters of an :class:`ElasticsearchOutput` since it started."""

    sent: int
    """Lines Elasticsearch accepted."""
    dropped: int
    """Oldest lines dropped because the queue was full."""
    failed: int
    """Lines Elasticsearch rejected, or still undelivered after every retry."""
    retried: int
    """Lines sent more than once."""
    queued: int
    """Lines waiting now."""


class ElasticsearchOutput:
    """Ship lines to ``<url>/_bulk`` in batches, one index per UTC day.

    ``write`` is an append to a bounded queue. The shipper thread sends when ``batch_size``
    lines are waiting or every ``flush_interval`` seconds, retries throttled or failed items
    with exponential backoff, and on :meth:`close` sends what is left within
    ``shutdown_timeout``. Problems are reported once on stderr, never through logging.
    """

    def __init__(self, settings: ElasticsearchSettings) -> None:
        self._settings = settings
        url = urlsplit(settings.url)
        self._https = url.scheme == "https"
        self._host = url.hostname or "localhost"
        self._port = url.port or (443 if self._https else 9200)
        self._bulk_path = url.path.rstrip("/") + "/_bulk"
        self._headers = {"Content-Type": "application/x-ndjson"}
        if settings.api_key is not None:
            self._headers["Authorization"] = f"ApiKey {settings.api_key.get_secret_value()}"
        elif settings.username is not None:
            password = settings.password.get_secret_value() if settings.password else ""
            token = base64.b64encode(f"{settings.username}:{password}".encode()).decode()
            self._headers["Authorization"] = f"Basic {token}"
        self._queue: deque[tuple[float, bytes]] = deque(maxlen=settings.queue_size)
        self._counter_lock = threading.Lock()
        self._sent = self._dropped = self._failed = self._retried = 0
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._idle = threading.Condition()
        self._busy = False
        self._connection: http.client.HTTPConnection | None = None
        self._indices: dict[int, bytes] = {}
        self._thread = threading.Thread(target=self._run, name="aegis-log-elasticsearch")
        self._thread.daemon = True
        self._thread.start()

    @property
    def stats(self) -> ShipperStats:
        """What was sent, dropped, failed and retried so far."""
        with self._counter_lock:
            return ShipperStats(
                self._sent, self._dropped, self._failed, self._retried, len(self._queue)
            )

    def write(self, entry: LogEntry) -> None:
        """Queue one line; when the queue is full the oldest line is dropped."""
        queue = self._queue
        if len(queue) == queue.maxlen:
            with self._counter_lock:
                self._dropped += 1
        queue.append((entry.created, entry.line))
        if len(queue) >= self._settings.batch_size:
            self._wake.set()

    def flush(self, timeout: float = 10.0) -> bool:
        """Send what is queued now; True when the queue emptied within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        self._wake.set()
        with self._idle:
            while self._queue or self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._wake.set()
                self._idle.wait(remaining)
        return True

    def close(self) -> None:
        """Send what is left (within ``shutdown_timeout``) and stop the shipper thread."""
        self._stopping.set()
        self._wake.set()
        self._thread.join(self._settings.shutdown_timeout + self._settings.timeout)
        if self._connection is not None:
            self._connection.close()

    # --- the shipper thread ------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self._settings.flush_interval)
            self._wake.clear()
            self._ship(deadline=None)
        self._ship(deadline=time.monotonic() + self._settings.shutdown_timeout)

    def _ship(self, deadline: float | None) -> None:
        while self._queue:
            with self._idle:
                self._busy = True
            batch = [
                self._queue.popleft()
                for _ in range(min(self._settings.batch_size, len(self._queue)))
            ]
            self._send_with_retries(batch, deadline)
            with self._idle:
                self._busy = False
                self._idle.notify_all()
            if deadline is not None and time.monotonic() >= deadline:
                self._count(failed=len(self._queue))
                self._queue.clear()
        with self._idle:
            self._idle.notify_all()

    def _send_with_retries(self, batch: list[tuple[float, bytes]], deadline: float | None) -> None:
        delay = self._settings.backoff
        for attempt in range(self._settings.max_retries + 1):
            if attempt:
                self._count(retried=len(batch))
            batch = self._send(batch)
            if not batch:
                return
            if attempt == self._settings.max_retries:
                break
            wait = delay if deadline is None else min(delay, deadline - time.monotonic())
            if wait <= 0:
                break
            if self._stopping.wait(wait) and deadline is None:
                # Shutdown began during the wait: the remaining retries share its deadline.
                deadline = time.monotonic() + self._settings.shutdown_timeout
            delay *= 2
        self._count(failed=len(batch))
        self._report("undelivered", f"{len(batch)} lines undelivered to {self._settings.url}")

    def _send(self, batch: list[tuple[float, bytes]]) -> list[tuple[float, bytes]]:
        """POST one batch; return the lines worth sending again."""
        body = b"".join(
            b'{"index":{"_index":"' + self._index(created) + b'"}}\n' + line + b"\n"
            for created, line in batch
        )
        try:
            status, payload = self._post(body)
        except (OSError, http.client.HTTPException) as exc:
            self._disconnect()
            self._report("unreachable", f"{self._settings.url} unreachable: {exc}")
            return batch
        if status in _RETRYABLE:
            self._report("retry", f"Elasticsearch answered {status}; retrying")
            return batch
        if status >= 300:
            self._count(failed=len(batch))
            self._report("refused", f"Elasticsearch refused a batch: {status} {payload[:200]!r}")
            return []
        return self._partial_failures(batch, payload)

    def _partial_failures(
        self, batch: list[tuple[float, bytes]], payload: bytes
    ) -> list[tuple[float, bytes]]:
        try:
            answer: dict[str, Any] = orjson.loads(payload)
        except orjson.JSONDecodeError:
            self._count(sent=len(batch))  # a 2xx without a readable body: Elasticsearch took it
            return []
        if not answer.get("errors"):
            self._count(sent=len(batch))
            return []
        retry: list[tuple[float, bytes]] = []
        sent = failed = 0
        for line, item in zip(batch, answer.get("items", []), strict=False):
            result: dict[str, Any] = next(iter(item.values()), {}) if isinstance(item, dict) else {}
            status = result.get("status", 500)
            if status < 300:
                sent += 1
            elif status in _RETRYABLE:
                retry.append(line)
            else:
                failed += 1
        self._count(sent=sent, failed=failed)
        if failed:
            self._report("rejected", f"Elasticsearch rejected {failed} lines (a mapping error?)")
        return retry

    def _index(self, created: float) -> bytes:
        day = int(created // _DAY)
        index = self._indices.get(day)
        if index is None:
            name = time.strftime(self._settings.index_pattern, time.gmtime(day * _DAY))
            index = self._indices[day] = orjson.dumps(name)[1:-1]
        return index

    def _post(self, body: bytes) -> tuple[int, bytes]:
        if self._connection is None:
            factory = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            self._connection = factory(self._host, self._port, timeout=self._settings.timeout)
        self._connection.request("POST", self._bulk_path, body=body, headers=self._headers)
        response = self._connection.getresponse()
        return response.status, response.read()

    def _disconnect(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _count(self, *, sent: int = 0, failed: int = 0, retried: int = 0) -> None:
        with self._counter_lock:
            self._sent += sent
            self._failed += failed
            self._retried += retried

    def _report(self, kind: str, message: str) -> None:
        PIPELINE.report_error(f"elasticsearch {kind}", RuntimeError(message))

"""Fixtures for aegis-log's tests: a clean logging state, captured JSON lines, local servers."""

from __future__ import annotations

import gzip
import io
import json
import logging
import sys
import threading
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import structlog

from aegis.log import (
    LogSettings,
    StreamOutput,
    clear_context,
    configure_logging,
    shutdown_logging,
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def clean_logging() -> Iterator[None]:
    """Give every test the process's logging as it was, whatever the test configured.

    The log context too: a field one test bound outside any request (``bind_context`` in a
    plain ``with request_context(...)``) would otherwise show in the next test's lines.
    """
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    excepthook, thread_hook = sys.excepthook, threading.excepthook
    yield
    shutdown_logging()
    root.handlers[:] = handlers
    root.setLevel(level)
    for logger in logging.Logger.manager.loggerDict.values():
        if isinstance(logger, logging.Logger) and logger.name.startswith(("tests", "app")):
            logger.setLevel(logging.NOTSET)
    sys.excepthook, threading.excepthook = excepthook, thread_hook
    structlog.reset_defaults()
    clear_context()


@dataclass
class Lines:
    """JSON lines written by the pipeline into memory."""

    buffer: io.BytesIO = field(default_factory=io.BytesIO)

    def all(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.buffer.getvalue().splitlines()]

    def raw(self) -> list[bytes]:
        return self.buffer.getvalue().splitlines()

    def last(self) -> dict[str, Any]:
        return self.all()[-1]


@pytest.fixture
def lines() -> Lines:
    """Configure logging at DEBUG into memory, with no console output."""
    captured = Lines()
    configure_logging(
        LogSettings(console=None, level="DEBUG"), outputs=[StreamOutput(captured.buffer)]
    )
    return captured


@pytest.fixture
def configure_into() -> Callable[..., Lines]:
    """Configure logging with the given settings fields, writing into memory."""

    def configure(**fields: Any) -> Lines:
        captured = Lines()
        settings = LogSettings(**{"console": None, **fields})
        configure_logging(settings, outputs=[StreamOutput(captured.buffer)])
        return captured

    return configure


# --- local HTTP servers ------------------------------------------------------------------------


@dataclass
class Recorder:
    """What a local HTTP server received, and how it should answer."""

    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    answer: Callable[[bytes], tuple[int, bytes]] = lambda _body: (200, b"{}")
    received: threading.Condition = field(default_factory=threading.Condition)

    def wait_for(self, count: int, timeout: float = 10.0) -> None:
        with self.received:
            assert self.received.wait_for(lambda: len(self.requests) >= count, timeout), (
                f"{len(self.requests)} requests arrived, expected {count}"
            )


def _serve(recorder: Recorder) -> Iterator[tuple[str, Recorder]]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            encoding = self.headers.get("Content-Encoding", "")
            if encoding == "gzip":
                body = gzip.decompress(body)
            elif encoding == "deflate":
                body = zlib.decompress(body)
            with recorder.received:  # recorded before the answer: the client may go on at once
                recorder.requests.append((self.path, dict(self.headers.items()), body))
                recorder.received.notify_all()
            status, answer = recorder.answer(body)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", recorder
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def http_server() -> Iterator[tuple[str, Recorder]]:
    """A local HTTP server on a free port that records every POST."""
    yield from _serve(Recorder())


@pytest.fixture
def free_port() -> int:
    """A port on 127.0.0.1 where nothing listens."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])

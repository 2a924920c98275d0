"""HttpRecorder: a local HTTP endpoint that records what is POSTed to it (a stand-in Sentry)."""

from __future__ import annotations

import gzip
import threading
import zlib
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self


@dataclass(frozen=True)
class RecordedRequest:
    """One POST an :class:`HttpRecorder` received: its path, headers (lower-case names), body."""

    path: str
    headers: dict[str, str]
    body: bytes


class HttpRecorder:
    """A local HTTP server on a free port that answers every POST ``200 {}`` and keeps its body.

    Bodies sent with ``Content-Encoding: gzip`` or ``deflate`` are kept decompressed. A body is
    recorded before the answer goes out, so a client that waited for the answer (Sentry's
    ``flush()``) finds it in :attr:`bodies`.

    Example:
        >>> with HttpRecorder() as sentry:
        ...     sentry_sdk.init(f"http://key@{sentry.address}/42")
        ...     ...
        ...     sentry_sdk.flush()
        ...     assert sentry.bodies
    """

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        """Every POST received, oldest first."""
        self.bodies: list[bytes] = []
        """Their bodies, the same order (the list grows as they arrive)."""
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                encoding = self.headers.get("Content-Encoding")
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "deflate":
                    body = zlib.decompress(body)
                headers = {name.lower(): value for name, value in self.headers.items()}
                recorder.requests.append(RecordedRequest(self.path, headers, body))
                recorder.bodies.append(body)
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT``."""
        return f"127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

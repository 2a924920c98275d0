"""A client that speaks HTTP/1.1 and WebSocket byte by byte over one TCP socket.

HTTP clients (httpx, TestClient) decide themselves when to reuse a connection, never pipeline,
and never upgrade a keep-alive connection to a WebSocket. Tests of what a server does with
the requests of *one* connection (request isolation, keep-alive after a large body) need to
decide that: this client writes exactly the bytes it is given and reads the answers back.
Standard library only.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Self

Headers = Mapping[str, str] | Iterable[tuple[str, str]]
"""Request headers: a mapping, or (name, value) pairs when a name repeats."""

_WEBSOCKET_GUID: Final = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 section 1.3
_OPCODE_CONTINUATION: Final = 0x0
_OPCODE_TEXT: Final = 0x1
_OPCODE_CLOSE: Final = 0x8
_OPCODE_PING: Final = 0x9
_OPCODE_PONG: Final = 0xA
_SHORT_LENGTH: Final = 126
_LONG_LENGTH: Final = 127
_NO_BODY_STATUSES: Final = frozenset({204, 304})
_MIN_BODY_STATUS: Final = 200


def http_request(
    method: str,
    path: str,
    *,
    headers: Headers = (),
    body: bytes = b"",
    host: str = "test",
) -> bytes:
    r"""Return one HTTP/1.1 request as bytes, with ``Host`` and ``Content-Length``.

    Join several to pipeline them: ``connection.send(http_request(...) + http_request(...))``
    puts both in one write.

    Example:
        >>> http_request("GET", "/health")
        b'GET /health HTTP/1.1\r\nHost: test\r\nContent-Length: 0\r\n\r\n'
    """
    pairs = list(headers.items() if isinstance(headers, Mapping) else headers)
    if not any(name.lower() == "content-length" for name, _ in pairs):
        pairs.append(("Content-Length", str(len(body))))
    return _request_head(method, path, pairs, host) + body


def _request_head(method: str, path: str, pairs: list[tuple[str, str]], host: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in pairs]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


@dataclass(frozen=True)
class RawResponse:
    """One HTTP response as read from the socket.

    Attributes:
        status: the status code.
        headers: (name, value) pairs in the order received, names lowercased.
        body: the body, de-chunked.
    """

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def header(self, name: str) -> str | None:
        """The first value of the header ``name`` (any case), or ``None``."""
        wanted = name.lower()
        return next((value for key, value in self.headers if key == wanted), None)

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


class RawConnection:
    """One TCP connection to a server; what is sent and when is entirely the caller's.

    HTTP/1.1 keep-alive and pipelining (:meth:`send` several requests, then
    :meth:`read_response` once per request), and a WebSocket opened on the same connection
    after HTTP requests (:meth:`websocket_connect`). Blocking, with a timeout on every read.

    Args:
        host: the server's address.
        port: the server's port.
        timeout: seconds any one socket operation may take.

    Example:
        >>> with RawConnection("127.0.0.1", port) as connection:
        ...     connection.send(http_request("GET", "/a") + http_request("GET", "/b"))
        ...     first, second = connection.read_response(), connection.read_response()
    """

    def __init__(self, host: str, port: int, *, timeout: float = 10.0) -> None:
        self._socket = socket.create_connection((host, port), timeout=timeout)
        self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buffer = bytearray()
        self._websocket_key = b""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the socket."""
        self._socket.close()

    def send(self, data: bytes) -> None:
        """Write ``data`` in one ``sendall``: several requests in it are pipelined."""
        self._socket.sendall(data)

    def request(
        self, method: str, path: str, *, headers: Headers = (), body: bytes = b""
    ) -> RawResponse:
        """Send one request on this connection and read its response."""
        self.send(http_request(method, path, headers=headers, body=body))
        return self.read_response(head=method == "HEAD")

    def read_response(self, *, head: bool = False) -> RawResponse:
        """Read the next response (``head``: the answer to a HEAD request, without a body).

        Raises:
            ConnectionError: the server closed the connection first.
            TimeoutError: nothing came within the timeout.
        """
        status, headers = self._read_head()
        fields = dict(headers)
        if head or status < _MIN_BODY_STATUS or status in _NO_BODY_STATUSES:
            body = b""
        elif fields.get("transfer-encoding", "").lower() == "chunked":
            body = self._read_chunked()
        elif "content-length" in fields:
            body = self._read_exact(int(fields["content-length"]))
        else:  # HTTP/1.1 section 6.3: the body runs to the end of the connection
            body = self._read_to_end()
        return RawResponse(status, headers, body)

    def websocket_connect(self, path: str, *, headers: Headers = ()) -> RawResponse:
        """Ask to upgrade this connection to a WebSocket; the server's answer.

        A ``101`` answer means the connection now speaks WebSocket
        (:meth:`websocket_receive_text`, :meth:`websocket_send_text`,
        :meth:`websocket_close`); any other status is the server refusing the handshake.
        To pipeline the upgrade behind other requests, :meth:`send` them together with
        :meth:`websocket_request` and read the answers, the handshake's with
        :meth:`read_websocket_handshake`.

        Raises:
            ConnectionError: a 101 answer whose ``Sec-WebSocket-Accept`` is wrong.
        """
        self.send(self.websocket_request(path, headers=headers))
        return self.read_websocket_handshake()

    def websocket_request(self, path: str, *, headers: Headers = ()) -> bytes:
        """The bytes of a WebSocket upgrade request, for :meth:`read_websocket_handshake`.

        Without ``Content-Length``, as browsers and WebSocket clients send it: a GET without
        one has no body (RFC 9112 section 6.3), and websockets before 16.0 (uvicorn's
        ``ws="websockets-sansio"``) refuses a handshake that carries one, even ``0``.
        """
        self._websocket_key = base64.b64encode(os.urandom(16))
        upgrade = [
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", self._websocket_key.decode("ascii")),
            ("Sec-WebSocket-Version", "13"),
            *(headers.items() if isinstance(headers, Mapping) else headers),
        ]
        return _request_head("GET", path, upgrade, "test")

    def read_websocket_handshake(self) -> RawResponse:
        """Read the answer to the last :meth:`websocket_request` (101: the upgrade is done).

        Raises:
            ConnectionError: a 101 answer whose ``Sec-WebSocket-Accept`` is wrong.
        """
        response = self.read_response()
        if response.status == 101:  # Switching Protocols
            digest = hashlib.sha1(
                self._websocket_key + _WEBSOCKET_GUID, usedforsecurity=False
            ).digest()
            if response.header("sec-websocket-accept") != base64.b64encode(digest).decode():
                raise ConnectionError("the server answered the handshake with a wrong accept key")
        return response

    def websocket_receive_text(self) -> str:
        """The next text message (pings are answered, other frames are refused).

        Raises:
            ConnectionError: the server closed the WebSocket (its close code in the message).
        """
        opcode, payload = self._receive_message()
        if opcode == _OPCODE_CLOSE:
            code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
            raise ConnectionError(f"the server closed the WebSocket (code {code})")
        if opcode != _OPCODE_TEXT:
            raise ConnectionError(f"expected a text message, got opcode {opcode:#x}")
        return payload.decode("utf-8")

    def websocket_send_text(self, text: str) -> None:
        """Send one text message (masked, as a client must)."""
        self._send_frame(_OPCODE_TEXT, text.encode("utf-8"))

    def websocket_close(self, code: int = 1000) -> int | None:
        """Send a close frame and wait for the server's; its close code (None: none given)."""
        self._send_frame(_OPCODE_CLOSE, struct.pack("!H", code))
        while True:
            opcode, payload = self._receive_message()
            if opcode == _OPCODE_CLOSE:
                return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None

    def _receive_message(self) -> tuple[int, bytes]:
        message_opcode, parts = None, []
        while True:
            first, second = self._read_exact(2)
            fin, opcode, length = first & 0x80, first & 0x0F, second & 0x7F
            if length == _SHORT_LENGTH:
                length = struct.unpack("!H", self._read_exact(2))[0]
            elif length == _LONG_LENGTH:
                length = struct.unpack("!Q", self._read_exact(8))[0]
            mask = self._read_exact(4) if second & 0x80 else None
            payload = self._read_exact(length)
            if mask is not None:
                payload = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
            if opcode == _OPCODE_PING:
                self._send_frame(_OPCODE_PONG, payload)
                continue
            if opcode == _OPCODE_PONG:
                continue
            if opcode != _OPCODE_CONTINUATION:
                message_opcode = opcode
            parts.append(payload)
            if fin and message_opcode is not None:
                return message_opcode, b"".join(parts)

    def _send_frame(self, opcode: int, payload: bytes) -> None:
        length = len(payload)
        if length < _SHORT_LENGTH:
            header = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
        elif length < 1 << 16:
            header = struct.pack("!BBH", 0x80 | opcode, 0x80 | _SHORT_LENGTH, length)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | _LONG_LENGTH, length)
        mask = os.urandom(4)
        masked = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
        self.send(header + mask + masked)

    def _read_head(self) -> tuple[int, tuple[tuple[str, str], ...]]:
        head = self._read_until(b"\r\n\r\n").decode("latin-1")
        status_line, *lines = head.split("\r\n")
        _, status, *_ = status_line.split(" ", 2)
        headers = []
        for line in lines:
            name, _, value = line.partition(":")
            headers.append((name.strip().lower(), value.strip()))
        return int(status), tuple(headers)

    def _read_chunked(self) -> bytes:
        body = bytearray()
        while True:
            size = int(self._read_until(b"\r\n").split(b";")[0], 16)
            if size == 0:
                while self._read_until(b"\r\n"):  # trailers, up to the empty line
                    pass
                return bytes(body)
            body += self._read_exact(size)
            self._read_exact(2)

    def _read_until(self, separator: bytes) -> bytes:
        while (end := self._buffer.find(separator)) < 0:
            self._fill()
        found = bytes(self._buffer[:end])
        del self._buffer[: end + len(separator)]
        return found

    def _read_exact(self, size: int) -> bytes:
        while len(self._buffer) < size:
            self._fill()
        found = bytes(self._buffer[:size])
        del self._buffer[:size]
        return found

    def _read_to_end(self) -> bytes:
        while True:
            chunk = self._socket.recv(65536)
            if not chunk:
                found, self._buffer = bytes(self._buffer), bytearray()
                return found
            self._buffer += chunk

    def _fill(self) -> None:
        chunk = self._socket.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self._buffer += chunk

"""RawConnection, http_request, uvicorn_server and LogLines: real sockets, exact bytes."""

from __future__ import annotations

import base64
import itertools
import socket
import threading
from typing import Any

import pytest

from aegis.testing import (
    UVICORN_LOOPS,
    UVICORN_PROTOCOLS,
    LogLines,
    RawConnection,
    http_request,
    uvicorn_server,
)


async def app(scope: Any, receive: Any, send: Any) -> None:
    """Echoes the request; /chunked streams its answer; /ws is a WebSocket echo."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["type"] == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        message = await receive()
        await send({"type": "websocket.send", "text": "echo:" + message["text"]})
        await receive()  # the client's close
        await send({"type": "websocket.close", "code": 1000})
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    answer = f"{scope['method']} {scope['path']} {len(body)}".encode()
    if scope["path"] == "/chunked":  # no content-length: the server sends it chunked
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": answer, "more_body": True})
        await send({"type": "http.response.body", "body": b"|end"})
        return
    status = 204 if scope["path"] == "/empty" else 200
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-length", str(len(answer) if status == 200 else 0).encode())],
        }
    )
    await send({"type": "http.response.body", "body": answer if status == 200 else b""})


def test_http_request_writes_host_and_content_length_unless_given() -> None:
    assert http_request("POST", "/a", headers={"X-A": "1"}, body=b"hi") == (
        b"POST /a HTTP/1.1\r\nHost: test\r\nX-A: 1\r\nContent-Length: 2\r\n\r\nhi"
    )
    given = http_request("GET", "/", headers=[("Content-Length", "0")], host="h")
    assert given == b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n"


SERVERS = list(itertools.product(UVICORN_LOOPS, UVICORN_PROTOCOLS))


@pytest.mark.parametrize(("loop", "http"), SERVERS, ids=["-".join(server) for server in SERVERS])
def test_one_connection_pipelines_keeps_alive_and_upgrades_to_a_websocket(
    loop: str, http: str
) -> None:
    with uvicorn_server(app, loop=loop, http=http, ws="websockets-sansio") as server:
        assert server.url == f"http://127.0.0.1:{server.port}"
        with server.connect() as connection:
            connection.send(
                http_request("POST", "/a", body=b"x" * 100_000)
                + http_request("GET", "/chunked")
                + http_request("HEAD", "/a")
                + http_request("GET", "/empty")
            )
            first, chunked = connection.read_response(), connection.read_response()
            head, empty = connection.read_response(head=True), connection.read_response()
            assert (first.status, first.body) == (200, b"POST /a 100000")
            assert first.header("Content-Length") == "14"
            assert first.header("x-missing") is None
            assert chunked.body == b"GET /chunked 0|end"
            assert chunked.header("transfer-encoding") == "chunked"
            assert (head.status, head.body) == (200, b"")
            assert (empty.status, empty.body) == (204, b"")
            assert connection.request("GET", "/again").body == b"GET /again 0"
            assert connection.websocket_connect("/ws").status == 101
            connection.websocket_send_text("héllo" * 30)  # a 16-bit length frame
            assert connection.websocket_receive_text() == "echo:" + "héllo" * 30
            assert connection.websocket_close() == 1000


def test_the_websocket_handshake_is_a_get_without_content_length_like_real_clients_send() -> None:
    """websockets before 16.0 refuses a handshake with a Content-Length, even 0."""
    listener = socket.create_server(("127.0.0.1", 0))
    with listener, RawConnection("127.0.0.1", listener.getsockname()[1]) as connection:
        request = connection.websocket_request("/ws", headers={"X-A": "1"})
        connection.send(request)
        accepted, _ = listener.accept()
        with accepted:
            accepted.settimeout(10)
            received = accepted.recv(65536)
    assert received == request
    head, _, body = request.partition(b"\r\n\r\n")
    request_line, *lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines)
    assert request_line == "GET /ws HTTP/1.1"
    assert len(base64.b64decode(headers.pop("Sec-WebSocket-Key"), validate=True)) == 16
    assert headers == {
        "Host": "test",
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Version": "13",
        "X-A": "1",
    }
    assert body == b""


def test_a_closed_connection_is_an_error_not_a_hang() -> None:
    with uvicorn_server(app) as server, server.connect() as connection:
        connection.send(b"NOT HTTP AT ALL\r\n\r\n")  # uvicorn answers 400 and closes
        assert connection.read_response().status == 400
        with pytest.raises(ConnectionError):
            connection.read_response()


def test_a_server_whose_start_up_fails_raises() -> None:
    async def failing(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "no database"})

    with pytest.raises(RuntimeError, match="did not start"), uvicorn_server(failing, lifespan="on"):
        pass  # pragma: no cover - the server never starts


class _Entry:
    def __init__(self, **event: Any) -> None:
        self.event = event


def test_log_lines_waits_for_lines_written_by_another_thread() -> None:
    lines = LogLines("aegis.access")

    def write() -> None:
        lines.write(_Entry(logger="other", request_id="r-1"))
        lines.write(_Entry(logger="aegis.access", request_id="r-2"))
        lines.write(_Entry(logger="aegis.access", request_id="r-1"))

    writer = threading.Thread(target=write)
    writer.start()
    first, second = lines.wait_for("request_id", ["r-1", "r-2"])
    writer.join()
    assert (first["request_id"], second["request_id"]) == ("r-1", "r-2")
    assert [line["request_id"] for line in lines.lines] == ["r-2", "r-1"]
    with pytest.raises(TimeoutError, match="r-3"):
        lines.wait_for("request_id", ["r-3"], timeout=0.01)
    lines.close()


def test_raw_connection_closes_on_exit() -> None:
    with uvicorn_server(app) as server:
        with RawConnection(server.host, server.port) as connection:
            assert connection.request("GET", "/").status == 200
        with pytest.raises(OSError, match="Bad file descriptor"):
            connection.send(b"GET / HTTP/1.1\r\n\r\n")

"""TcpProxy: a cut looks like the server going away; HttpRecorder: what was POSTed."""

from __future__ import annotations

import gzip
import http.client
import socket
import threading
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from aegis.testing import HttpRecorder, TcpProxy


@pytest.fixture
def redis_target(redis_url: str) -> tuple[str, int]:
    parts = urlsplit(redis_url)
    return parts.hostname or "127.0.0.1", parts.port or 6379


def ping(connection: socket.socket) -> bytes:
    """One Redis PING over a raw socket: the answer, or b"" when the path was closed."""
    try:
        connection.sendall(b"PING\r\n")
        return connection.recv(64)
    except OSError:  # reset or broken pipe: closed too
        return b""


def connect(proxy: TcpProxy) -> socket.socket:
    return socket.create_connection(("127.0.0.1", proxy.port), timeout=5)


def test_a_cut_closes_connections_and_refuses_new_ones_and_a_restore_serves_again(
    redis_target: tuple[str, int],
) -> None:
    with TcpProxy(*redis_target) as proxy, connect(proxy) as opened:
        assert ping(opened) == b"+PONG\r\n"
        proxy.cut()
        assert ping(opened) == b""
        with pytest.raises(ConnectionRefusedError):
            connect(proxy)
        proxy.restore()
        with connect(proxy) as fresh:
            assert ping(fresh) == b"+PONG\r\n"
        assert proxy.address == f"127.0.0.1:{proxy.port}"


def test_cut_and_restore_are_idempotent(redis_target: tuple[str, int]) -> None:
    proxy = TcpProxy(*redis_target)
    proxy.cut()
    proxy.restore()
    proxy.restore()
    with connect(proxy) as connection:
        assert ping(connection) == b"+PONG\r\n"
    proxy.cut()
    proxy.cut()
    with pytest.raises(ConnectionRefusedError):
        connect(proxy)


def test_a_unix_socket_server_is_forwarded_too(tmp_path: Path) -> None:
    path = str(tmp_path / "server.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)

    def answer() -> None:
        connection, _ = server.accept()
        with connection:
            connection.sendall(b"+PONG\r\n" if connection.recv(64) == b"PING\r\n" else b"-ERR\r\n")

    answering = threading.Thread(target=answer)
    answering.start()
    with TcpProxy(path) as proxy, connect(proxy) as connection:
        assert ping(connection) == b"+PONG\r\n"
    answering.join()
    server.close()


def test_http_recorder_keeps_each_posted_body_decompressed() -> None:
    with HttpRecorder() as recorder:
        for body, encoding in ((b"plain", None), (gzip.compress(b"zipped"), "gzip")):
            host, port = recorder.address.split(":")
            connection = http.client.HTTPConnection(host, int(port), timeout=5)
            headers = {"Content-Encoding": encoding} if encoding else {}
            connection.request("POST", "/api/42/envelope/", body=body, headers=headers)
            assert connection.getresponse().read() == b"{}"
            connection.close()
    assert recorder.bodies == [b"plain", b"zipped"]

"""Fixtures for aegis-config's tests: a clean environment, a master key and a local Vault."""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from aegis.core.utils.security import generate_key

VARIABLE_PREFIXES = ("AEGIS_", "APP_ENV", "ENVIRONMENT", "VAULT_", "USERS_", "PYDANTIC_SETTINGS")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Run every test in an empty directory with no variable that aegis-config reads."""
    for name in list(os.environ):
        if name.startswith(VARIABLE_PREFIXES):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def master_key(monkeypatch: pytest.MonkeyPatch) -> str:
    """Set AEGIS_MASTER_KEY to a one-key ring and return it."""
    ring = f"k1:{generate_key()}"
    monkeypatch.setenv("AEGIS_MASTER_KEY", ring)
    return ring


@dataclass
class FakeVault:
    """A Vault that speaks KV v2 reads and AppRole login, and remembers what it was asked.

    A secret stored as a dict is answered as KV v2 data; as ``bytes``, as a raw 200 body;
    as an ``int``, as that HTTP status with a plain-text body.
    """

    url: str
    secrets: dict[str, Any] = field(default_factory=dict)
    tokens: set[str] = field(default_factory=lambda: {"root-token"})
    approle: tuple[str, str] = ("role-1", "secret-1")
    approle_token: str | None = "approle-token"
    requests: list[str] = field(default_factory=list)
    namespaces: list[str | None] = field(default_factory=list)

    def reads(self) -> list[str]:
        """The KV paths read so far, in order."""
        return [path for path in self.requests if "/data/" in path]


class _VaultHandler(BaseHTTPRequestHandler):
    vault: FakeVault

    def do_GET(self) -> None:
        self.vault.requests.append(self.path)
        self.vault.namespaces.append(self.headers.get("X-Vault-Namespace"))
        if self.headers.get("X-Vault-Token") not in self.vault.tokens:
            self._answer(403, {"errors": ["permission denied"]})
            return
        mount, _, path = self.path.removeprefix("/v1/").partition("/data/")
        data = self.vault.secrets.get(f"{mount}/{path}")
        if data is None:
            self._answer(404, {"errors": []})
        elif isinstance(data, bytes):
            self._send(200, data, "text/html")
        elif isinstance(data, int):
            self._send(data, b"upstream failed", "text/plain")
        else:
            self._answer(200, {"data": {"data": data, "metadata": {"version": 1}}})

    def do_POST(self) -> None:
        self.vault.requests.append(self.path)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if (body.get("role_id"), body.get("secret_id")) != self.vault.approle:
            self._answer(400, {"errors": ["invalid role or secret ID"]})
            return
        token = self.vault.approle_token
        if token is not None:
            self.vault.tokens.add(token)
        self._answer(200, {"auth": {"client_token": token, "lease_duration": 60}})

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        self._send(status, json.dumps(body).encode(), "application/json")

    def _send(self, status: int, payload: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the test output quiet."""


@pytest.fixture
def vault() -> Iterator[FakeVault]:
    """A local KV v2 + AppRole Vault on a free loopback port, for one test."""
    handler: type[_VaultHandler] = type("Handler", (_VaultHandler,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    fake = FakeVault(url=f"http://127.0.0.1:{server.server_address[1]}")
    handler.vault = fake
    # A short poll interval: shutdown() waits up to one interval.
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
    )
    thread.start()
    yield fake
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def silent_vault() -> Iterator[str]:
    """The URL of a server that accepts connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


@pytest.fixture
def closed_port_url() -> str:
    """The URL of a loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"

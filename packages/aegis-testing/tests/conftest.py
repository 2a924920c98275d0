"""Fixtures for aegis-testing's own tests."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

ServerGone = Callable[[str], bool]


def _server_gone(url: str) -> bool:
    """Return whether the server at ``url`` (any of the three kinds) has stopped and left no data.

    An embedded PostgreSQL listens on a socket inside its data directory, so that directory
    must be gone; Redis and Kafka must no longer accept connections on their port.
    """
    if url.startswith("postgresql://"):
        return not Path(parse_qs(urlsplit(url).query)["host"][0]).exists()
    host_port = url.removeprefix("redis://").split("/")[0]
    host, port = host_port.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
    except OSError:
        return True
    return False


@pytest.fixture
def server_gone() -> ServerGone:
    """``server_gone(url)``: true once the embedded server at ``url`` stopped and left nothing."""
    return _server_gone


@pytest.fixture
def failing_tansu(tmp_path: Path) -> Path:
    """An executable that stands in for the broker, writes a log line and fails."""
    script = tmp_path / "tansu"
    script.write_text("#!/bin/sh\necho 'tansu: cannot bind listener: address in use'\nexit 3\n")
    script.chmod(0o755)
    return script

"""``aegis-testing services up|down|status|check``: the test servers outside pytest.

``up`` starts embedded servers that outlive the command and prints ``export`` lines for a
shell (``eval "$(aegis-testing services up)"``); ``up --topology NAME`` does the same for a
multi-node topology (``postgres-replica``, ``redis-cluster``, ``redis-sentinel``); ``down``
stops them all and deletes their data. On a terminal, ``up`` shows each server or node
starting and when it is healthy, with the seconds since the command began.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from aegis.testing._servers import (
    SERVICE_KINDS,
    EmbeddedServer,
    ServiceKind,
    ServiceStartError,
    start_server,
)
from aegis.testing._services import URL_VARIABLES, check_service, redact
from aegis.testing._topologies import TOPOLOGY_NAMES, TopologyName, start_topology
from aegis.testing._topology import node_logger

DEFAULT_STATE_FILE = Path(".aegis/services.jsonl")


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the process exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    state_file: Path = args.state_file
    unknown = sorted(set(args.kinds) - set(SERVICE_KINDS))
    if unknown:
        parser.error(
            f"unknown service {', '.join(unknown)}; choose from {', '.join(SERVICE_KINDS)}"
        )
    kinds: list[ServiceKind] = args.kinds or list(SERVICE_KINDS)
    if args.action == "up" and args.topology:
        if args.kinds:
            parser.error("give either service kinds or --topology, not both")
        return _up_topology(state_file, args.topology)
    if args.action == "up":
        return _up(state_file, kinds)
    if args.action == "down":
        return _down(state_file)
    if args.action == "status":
        return _status(state_file)
    return _check(args.kind, args.url)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aegis-testing", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    services = commands.add_parser("services", help="manage the real servers tests use")
    actions = services.add_subparsers(dest="action", required=True)
    for action, text in [
        ("up", "start embedded servers and print export lines"),
        ("down", "stop the servers started by 'up' and delete their data"),
        ("status", "show the servers started by 'up'"),
    ]:
        command = actions.add_parser(action, help=text)
        command.add_argument(
            "--state-file",
            type=Path,
            default=DEFAULT_STATE_FILE,
            help=f"where 'up' records its servers (default: {DEFAULT_STATE_FILE})",
        )
        if action == "up":
            command.add_argument(
                "--topology",
                choices=TOPOLOGY_NAMES,
                help="start a multi-node topology instead of single servers",
            )
            command.add_argument(
                "kinds",
                nargs="*",
                metavar="KIND",
                help=f"any of {', '.join(SERVICE_KINDS)} (default: all)",
            )
        else:
            command.set_defaults(kinds=[], topology=None)
    check = actions.add_parser("check", help="exit 0 when the server at URL answers")
    check.add_argument("kind", choices=SERVICE_KINDS)
    check.add_argument("url")
    check.set_defaults(state_file=DEFAULT_STATE_FILE, kinds=[], topology=None)
    return parser


def _up(state_file: Path, kinds: list[ServiceKind]) -> int:
    progress = _Progress()
    running = {server.kind: server for server in _read(state_file) if server.is_running()}
    for kind in kinds:
        if kind in running:
            progress.line(f"{kind} already running (pid {running[kind].pid})")
            continue
        progress.line(f"embedded {kind} starting ...")
        began = time.monotonic()
        try:
            running[kind] = start_server(kind, detached=True)
        except ServiceStartError as exc:
            _write(state_file, list(running.values()))
            _say(str(exc))
            return 1
        progress.line(f"embedded {kind} healthy in {time.monotonic() - began:.2f}s")
    _write(state_file, list(running.values()))
    for server in running.values():
        print(f"export {URL_VARIABLES[server.kind]}={shlex.quote(server.url)}")
    return 0


def _up_topology(state_file: Path, name: TopologyName) -> int:
    record_file = _topology_file(state_file, name)
    if record_file.exists():
        record = json.loads(record_file.read_text())
        nodes = [EmbeddedServer.from_json(json.dumps(node)) for node in record["nodes"]]
        if all(node.is_running() for node in nodes):
            _export(record["environment"])
            return 0
        _stop_topology(record_file)
    progress = _Progress()
    progress.line(f"{name} topology starting ...")
    try:
        with progress.showing(node_logger):
            topology = start_topology(name, detached=True)
    except ServiceStartError as exc:
        _say(str(exc))
        return 1
    _say(f"{name} healthy in {topology.startup_seconds:.1f}s")
    environment = topology.environment()
    record_file.parent.mkdir(parents=True, exist_ok=True)
    record_file.write_text(
        json.dumps(
            {
                "topology": name,
                "root": str(topology.root),
                "environment": environment,
                "nodes": [json.loads(node.to_json()) for node in topology.records()],
            }
        )
    )
    _export(environment)
    return 0


def _topology_file(state_file: Path, name: str) -> Path:
    return state_file.with_name(f"{state_file.stem}.{name}.json")


def _topology_files(state_file: Path) -> list[Path]:
    return sorted(state_file.parent.glob(f"{state_file.stem}.*.json"))


def _stop_topology(record_file: Path) -> list[EmbeddedServer]:
    record = json.loads(record_file.read_text())
    nodes = [EmbeddedServer.from_json(json.dumps(node)) for node in record["nodes"]]
    for node in nodes:
        node.stop()
    shutil.rmtree(record["root"], ignore_errors=True)
    record_file.unlink()
    return nodes


def _export(environment: dict[str, str]) -> None:
    for variable, value in environment.items():
        print(f"export {variable}={shlex.quote(value)}")


def _down(state_file: Path) -> int:
    for server in _read(state_file):
        server.stop()
        _say(f"stopped {server.kind} (pid {server.pid})")
    state_file.unlink(missing_ok=True)
    for record_file in _topology_files(state_file):
        nodes = _stop_topology(record_file)
        _say(f"stopped {record_file.stem.rpartition('.')[2]} ({len(nodes)} nodes)")
    return 0


def _status(state_file: Path) -> int:
    servers = [("", server) for server in _read(state_file)]
    for record_file in _topology_files(state_file):
        record = json.loads(record_file.read_text())
        servers += [
            (f"{record['topology']} ", EmbeddedServer.from_json(json.dumps(node)))
            for node in record["nodes"]
        ]
    if not servers:
        _say("no servers started by 'services up'")
    for topology, server in servers:
        state = "running" if server.is_running() else "not running"
        print(f"{topology}{server.kind:9} {state:12} pid {server.pid:<8} {server.url}")
    return 0 if all(server.is_running() for _, server in servers) else 1


def _check(kind: ServiceKind, url: str) -> int:
    try:
        check_service(kind, url)
    except Exception as exc:  # any failure means "does not answer"
        _say(f"{kind} at {redact(url)} does not answer: {exc}")
        return 1
    return 0


def _read(state_file: Path) -> list[EmbeddedServer]:
    if not state_file.exists():
        return []
    lines = state_file.read_text().splitlines()
    return [EmbeddedServer.from_json(line) for line in lines if line.strip()]


def _write(state_file: Path, servers: list[EmbeddedServer]) -> None:
    state_file.parent.mkdir(parents=True, exist_ok=True)
    state_file.write_text("".join(server.to_json() + "\n" for server in servers))


def _say(message: str) -> None:
    print(message, file=sys.stderr)


class _Progress:
    """Progress lines on standard error, led by the seconds since the command began.

    Nothing unless standard error is a terminal, so scripts see only the results. These are
    the lines aegis-core's ``ProgressReporter`` prints; aegis-testing does not depend on
    aegis-core (whose test extra requires aegis-testing), so it keeps these few of its own.
    """

    def __init__(self) -> None:
        self.stream = sys.stderr
        isatty = getattr(self.stream, "isatty", None)
        self.enabled = bool(isatty and isatty())
        self._began = time.monotonic()

    def line(self, text: str) -> None:
        if self.enabled:
            self.stream.write(f"{time.monotonic() - self._began:6.1f}s  {text}\n")
            self.stream.flush()

    @contextmanager
    def showing(self, logger: logging.Logger) -> Iterator[None]:
        """Show ``logger``'s INFO lines as progress lines during the block."""
        if not self.enabled:
            yield
            return
        handler = _ProgressHandler(self)
        level = logger.level
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        try:
            yield
        finally:
            logger.removeHandler(handler)
            logger.setLevel(level)


class _ProgressHandler(logging.Handler):
    def __init__(self, progress: _Progress) -> None:
        super().__init__(logging.INFO)
        self.progress = progress

    def emit(self, record: logging.LogRecord) -> None:
        self.progress.line(record.getMessage())


if __name__ == "__main__":
    sys.exit(main())

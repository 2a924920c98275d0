"""``aegis-msg``: the command line of aegis.msg (``aegis-msg dlt list|show|replay``)."""

from __future__ import annotations

import argparse
import sys

from aegis.msg.__about__ import __version__
from aegis.msg._dlt_cli import add_dlt_commands, run_dlt


def main(argv: list[str] | None = None) -> int:
    """Run ``aegis-msg`` with ``argv`` (default: the process's arguments); return the status.

    Example:
        >>> main(["dlt", "list", "orders.DLT", "--bootstrap", "kafka:9092", "--limit", "20"])
    """
    parser = argparse.ArgumentParser(
        prog="aegis-msg", description="Operate aegis.msg event flows on Kafka."
    )
    parser.add_argument("--version", action="version", version=f"aegis-msg {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{dlt}")
    add_dlt_commands(commands)
    args = parser.parse_args(argv)
    try:
        return run_dlt(args, parser)
    except BrokenPipeError:  # the reader went away (| head): stop quietly
        sys.stderr.close()
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

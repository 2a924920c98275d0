"""``aegis-msg-asyncapi``: write a service's AsyncAPI document (or its HTML page) to a file."""

from __future__ import annotations

import argparse
import pkgutil
import sys
from pathlib import Path

from aegis.core.errors import ConfigurationError
from aegis.msg._asyncapi import AsyncAPI


def main(argv: list[str] | None = None) -> int:
    """Write the AsyncAPI document of ``module:attribute`` (an :class:`AsyncAPI`) to a file.

    Run as ``aegis-msg-asyncapi user_service.events:asyncapi -o asyncapi.yaml``;
    without ``-o`` the JSON goes to standard output. ``--html`` writes the rendered page as
    one self-contained HTML file instead. Returns the exit status.
    """
    parser = argparse.ArgumentParser(
        prog="aegis-msg-asyncapi", description="Write a service's AsyncAPI document."
    )
    parser.add_argument("target", help="the AsyncAPI object, as package.module:attribute")
    parser.add_argument(
        "-o", "--output", help="file to write (.yaml/.yml: YAML, .html/.htm: the page, else JSON)"
    )
    parser.add_argument(
        "--html",
        action="store_true",
        help="write the rendered page as one self-contained HTML file (works offline)",
    )
    args = parser.parse_args(argv)
    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))  # a service's own modules, as python -m finds them
    try:
        asyncapi = pkgutil.resolve_name(args.target)
    except (ImportError, AttributeError, ValueError) as exc:
        sys.stderr.write(f"error: cannot load {args.target!r}: {exc}\n")
        return 1
    if not isinstance(asyncapi, AsyncAPI):
        sys.stderr.write(f"error: {args.target} is not an aegis.msg.AsyncAPI\n")
        return 1
    try:
        if args.html:
            text = asyncapi.to_html()
            if args.output:
                Path(args.output).write_text(text, encoding="utf-8")
            else:
                sys.stdout.write(text)
        elif args.output:
            asyncapi.write(args.output)
        else:
            sys.stdout.write(asyncapi.to_json())
    except ConfigurationError as exc:
        sys.stderr.write(f"error: {exc.message}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

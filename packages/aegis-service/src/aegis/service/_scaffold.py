"""``aegis-service new NAME``: write a runnable service that passes its own tests at once."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from string import Template
from typing import Final

from aegis.core.errors import ConfigurationError
from aegis.service._templates import FILES

_NAME: Final = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
_MAX_NAME: Final = 40


def new_service(name: str, directory: Path | None = None) -> Path:
    """Write the service ``name`` into ``directory`` (``./NAME`` by default); return its path.

    The service: a pyproject, a FastAPI app built with :func:`~aegis.service.bootstrap`, its
    settings, a table declared in an aegis-schema registry (``schemas/``) with its SQLAlchemy
    model and repository, a protected route, and tests on aegis-testing's fixtures that pass
    as generated (``pytest`` in the folder, with no install: pytest's ``pythonpath``).

    Raises:
        ConfigurationError: ``name`` is not lower-case letters, digits and single hyphens
            (starting with a letter, at most 40 characters), or the directory exists and is
            not empty.

    Example:
        >>> new_service("orders", Path("services/orders"))
    """
    if len(name) > _MAX_NAME or not _NAME.fullmatch(name):
        raise ConfigurationError(
            f"service name {name!r}: use lower-case letters, digits and single hyphens, "
            f"starting with a letter, at most {_MAX_NAME} characters (e.g. 'orders')"
        )
    target = directory if directory is not None else Path(name)
    if target.exists() and any(target.iterdir()):
        raise ConfigurationError(f"{target} exists and is not empty: choose another directory")
    package = name.replace("-", "_")
    values = {
        "name": name,
        "package": package,
        "prefix": package.upper(),
        "title": name.replace("-", " ").capitalize(),
    }
    for relative, text in FILES.items():
        path = target / Template(relative).substitute(values)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(Template(text).substitute(values))
    return target


def main(argv: list[str] | None = None) -> int:
    """The ``aegis-service`` command line."""
    parser = argparse.ArgumentParser(prog="aegis-service", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    new = commands.add_parser("new", help="write a new service that passes its own tests")
    new.add_argument("name", help="the service name, e.g. orders")
    new.add_argument("--directory", type=Path, help="where to write it (default: ./NAME)")
    arguments = parser.parse_args(argv)
    try:
        target = new_service(arguments.name, arguments.directory)
    except ConfigurationError as exc:
        sys.stderr.write(f"aegis-service: {exc.message}\n")
        return 2
    sys.stdout.write(f"Wrote {target}. Next: cd {target} && pytest\n")
    return 0

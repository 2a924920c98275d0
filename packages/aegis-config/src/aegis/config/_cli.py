"""``aegis-config show|encrypt|decrypt|generate-key``: inspect settings and manage encrypted values.

``show package.module:Settings [--env production]`` prints the effective settings with
secrets masked and the source of each value. ``encrypt`` turns a value (argument or stdin)
into ``enc:v1:<token>`` with the newest key in ``AEGIS_MASTER_KEY``; ``decrypt`` checks
such a value and prints its plaintext; ``generate-key`` prints a new key ring entry.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from aegis.config._encryption import (
    MASTER_KEY_VARIABLE,
    decrypt_value,
    encrypt_value,
    generate_master_key,
)
from aegis.core.errors import AegisError, InvalidInputError

if TYPE_CHECKING:
    from aegis.config._settings import AegisSettings

# `show` alone loads pydantic-settings and the models (in the function, marked `# lazy:`), so
# that --help, encrypt, decrypt and generate-key answer without them.


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the process exit status (1 on a configuration error)."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "show":
            from aegis.config._environment import parse_environment  # lazy: aegis.core.models
            from aegis.config._show import describe_settings  # lazy: pydantic-settings

            settings_cls = import_settings(args.settings)
            environment = parse_environment(args.env, source="--env") if args.env else None
            print(describe_settings(settings_cls.load(environment=environment)))
        elif args.command == "encrypt":
            print(encrypt_value(_value(args.value)))
        elif args.command == "decrypt":
            print(decrypt_value(_value(args.value)))
        else:
            print(generate_master_key(args.key_id))
    except AegisError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    return 0


def import_settings(target: str) -> type[AegisSettings]:
    """Import the settings class named ``package.module:ClassName``.

    The current directory is searched first, as ``python -m`` would, so a service's own
    modules are found when the command runs from its root.

    Raises:
        InvalidInputError: the target is malformed, cannot be imported or is not an
            :class:`AegisSettings` subclass.
    """
    from aegis.config._settings import AegisSettings  # lazy: pydantic-settings

    module_name, colon, class_name = target.partition(":")
    if not colon or not module_name or not class_name:
        raise InvalidInputError(
            f"{target!r} is not module:Class (e.g. user_service.settings:Settings)",
            field="settings",
            rule="format",
        )
    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise InvalidInputError(
            f"cannot import {module_name!r}: {exc}", field="settings", rule="import"
        ) from exc
    settings_cls = getattr(module, class_name, None)
    if not (isinstance(settings_cls, type) and issubclass(settings_cls, AegisSettings)):
        raise InvalidInputError(
            f"{target} is not an AegisSettings subclass", field="settings", rule="type"
        )
    return settings_cls


def _value(argument: str | None) -> str:
    # Read from stdin when no argument is given, so the value stays out of shell history.
    if argument is None or argument == "-":
        return sys.stdin.read().removesuffix("\n")
    return argument


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aegis-config", description=__doc__.split("\n", 1)[0] if __doc__ else None
    )
    commands = parser.add_subparsers(dest="command", required=True)
    show = commands.add_parser("show", help="print the effective settings and their sources")
    show.add_argument("settings", help="the settings class, as package.module:ClassName")
    show.add_argument("--env", help="environment to load (default: from AEGIS_ENV)")
    for name, text in [
        ("encrypt", f"encrypt a value with the newest key in {MASTER_KEY_VARIABLE}"),
        ("decrypt", "check an enc:v1: value and print its plaintext"),
    ]:
        command = commands.add_parser(name, help=text)
        command.add_argument("value", nargs="?", help="the value (default: read stdin)")
    generate = commands.add_parser(
        "generate-key", help=f"print a new <key id>:<key> entry for {MASTER_KEY_VARIABLE}"
    )
    generate.add_argument(
        "--key-id",
        default=datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%d"),
        help="the key's id (default: today's date)",
    )
    return parser

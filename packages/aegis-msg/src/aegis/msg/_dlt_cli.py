"""``aegis-msg dlt list|show|replay``: the dead-letter commands of the ``aegis-msg`` command line.

Exit status: 0 done, 1 something failed (Kafka, a missing topic or record, a record that was
not replayed), 2 a usage error. Every failure is one line on standard error, no traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Final

from confluent_kafka import KafkaException
from pydantic import ValidationError

from aegis.core.errors import AegisError, ConfigurationError, InvalidInputError
from aegis.core.progress import ProgressReporter
from aegis.msg._dlt import DeadLetter
from aegis.msg._dlt_client import DeadLetters, ReplayResult, client_logger
from aegis.msg._dlt_output import (
    Tally,
    list_summary,
    record_line,
    replay_summary,
    result_json,
    result_line,
    show_text,
)
from aegis.msg._dlt_selection import DeadLetterSelection, OffsetRange, parse_position, parse_time
from aegis.msg._kafka import KafkaSettings

ENV_PREFIX: Final = "AEGIS_MSG_KAFKA__"
"""``AEGIS_MSG_KAFKA__BOOTSTRAP_SERVERS`` and so on: a variable per :class:`KafkaSettings` field."""

_DICT_FIELDS: Final = ("producer", "consumer")
_CLIENT_ID: Final = "aegis-msg-dlt"


def add_dlt_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``dlt`` command group (list, show, replay) to ``commands``."""
    dlt = commands.add_parser("dlt", help="list, show and replay dead letters")
    actions = dlt.add_subparsers(
        dest="action", required=True, metavar="{list,show,replay}", parser_class=_Intermixed
    )
    listing = actions.add_parser("list", help="one line per dead letter of TOPIC")
    listing.add_argument("topic", metavar="TOPIC", help="the dead-letter topic")
    _add_selection(listing)
    listing.add_argument("--json", action="store_true", help="JSON lines instead of text")
    _add_kafka(listing)
    listing.set_defaults(run=_list)

    show = actions.add_parser("show", help="one dead letter in full")
    show.add_argument("topic", metavar="TOPIC", help="the dead-letter topic")
    show.add_argument("position", type=_record, metavar="PARTITION:OFFSET")
    show.add_argument("--json", action="store_true", help="one JSON document instead of text")
    _add_kafka(show)
    show.set_defaults(run=_show)

    replay = actions.add_parser("replay", help="publish dead letters to their topic again")
    replay.add_argument("topic", metavar="TOPIC", help="the dead-letter topic")
    _add_selection(replay)
    replay.add_argument("--all", action="store_true", help="every record, when nothing selects")
    replay.add_argument("--to", metavar="TOPIC", help="this topic instead of the original one")
    replay.add_argument("--dry-run", action="store_true", help="show what would be sent")
    replay.add_argument("--json", action="store_true", help="JSON lines instead of text")
    _add_kafka(replay)
    replay.set_defaults(run=_replay)


class _Intermixed(argparse.ArgumentParser):
    """A command whose positions may follow its options (``list T --json 0:3``).

    Plain argparse fills every positional at the first run of them, so later positions would
    be "unrecognized arguments"; intermixed parsing takes them wherever they are.
    """

    _mixing = False

    def parse_known_args(  # type: ignore[override]
        self, args: list[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        if self._mixing:
            return super().parse_known_args(args, namespace)
        self._mixing = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._mixing = False


def _add_selection(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("selection (criteria of different kinds must all hold)")
    group.add_argument(
        "positions",
        nargs="*",
        type=_position,
        metavar="POSITION",
        help="PARTITION:OFFSET, PARTITION:FIRST-LAST or PARTITION:FIRST-",
    )
    group.add_argument("--from-offset", type=_offset, metavar="N", help="first offset")
    group.add_argument("--to-offset", type=_offset, metavar="N", help="last offset (inclusive)")
    group.add_argument(
        "--since", type=_time, metavar="TIME", help="dead-lettered at or after (ISO 8601 or 2h)"
    )
    group.add_argument("--until", type=_time, metavar="TIME", help="dead-lettered before")
    group.add_argument(
        "--id", dest="event_ids", action="append", default=[], metavar="EVENT_ID", help="event id"
    )
    group.add_argument("--limit", type=_count, metavar="N", help="at most N records")


def _add_kafka(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("kafka")
    group.add_argument(
        "--bootstrap",
        metavar="HOST:PORT[,...]",
        help=f"bootstrap servers (default ${ENV_PREFIX}BOOTSTRAP_SERVERS, else localhost:9092)",
    )
    group.add_argument(
        "-X",
        dest="client_config",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a librdkafka setting for both clients, e.g. -X ssl.ca.location=/etc/ca.pem "
        f"(security also from ${ENV_PREFIX}SECURITY_PROTOCOL, ..._SASL_MECHANISM, "
        "..._SASL_USERNAME, ..._SASL_PASSWORD)",
    )
    group.add_argument(
        "--timeout", type=_positive, default=10.0, metavar="SECONDS", help="wait for Kafka"
    )
    group.add_argument("-v", "--verbose", action="store_true", help="show Kafka client logs")


def run_dlt(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Run the parsed ``dlt`` command; usage errors go through ``parser.error`` (status 2)."""
    try:
        settings = kafka_settings(args, os.environ)
        selection = _selection(args) if hasattr(args, "positions") else DeadLetterSelection()
    except InvalidInputError as exc:
        parser.error(exc.message)
    run: Callable[[argparse.Namespace, DeadLetterSelection, DeadLetters], int] = args.run
    try:
        with _client_logs(verbose=args.verbose), DeadLetters(settings, timeout=args.timeout) as dl:
            return run(args, selection, dl)
    except ConfigurationError as exc:  # librdkafka refused a setting (-X, variables)
        return _usage(exc.message)
    except AegisError as exc:
        return _fail(exc.message)
    except KafkaException as exc:  # whatever else the client raises: one line, no traceback
        return _fail(f"Kafka: {exc.args[0].str() if exc.args else exc}")


def kafka_settings(args: argparse.Namespace, environ: Mapping[str, str]) -> KafkaSettings:
    """:class:`KafkaSettings` from ``AEGIS_MSG_KAFKA__*`` variables, then the options.

    Raises:
        InvalidInputError: a variable or option does not make valid settings.
    """
    values: dict[str, Any] = {}
    for name in KafkaSettings.model_fields:
        raw = environ.get(ENV_PREFIX + name.upper())
        if raw is None:
            continue
        if name in _DICT_FIELDS:
            try:
                values[name] = json.loads(raw)
            except ValueError as exc:
                raise InvalidInputError(
                    f"{ENV_PREFIX}{name.upper()} is not a JSON object: {exc}", field=name
                ) from exc
        else:
            values[name] = raw
    if args.bootstrap:
        values["bootstrap_servers"] = args.bootstrap
    values.setdefault("client_id", _CLIENT_ID)
    extra = dict(_pair(item) for item in args.client_config)
    for name in _DICT_FIELDS:
        if not isinstance(values.get(name, {}), dict):
            raise InvalidInputError(f"{ENV_PREFIX}{name.upper()} is not a JSON object", field=name)
        values[name] = {**values.get(name, {}), **extra}
    try:
        return KafkaSettings.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = ".".join(str(part) for part in first["loc"])
        raise InvalidInputError(
            f"Kafka setting {name} ({ENV_PREFIX}{str(first['loc'][0]).upper()}): {first['msg']}",
            field=name,
        ) from exc


def _selection(args: argparse.Namespace) -> DeadLetterSelection:
    return DeadLetterSelection(
        positions=tuple(args.positions),
        from_offset=args.from_offset,
        to_offset=args.to_offset,
        since=args.since,
        until=args.until,
        event_ids=frozenset(args.event_ids),
        limit=args.limit,
    )


def _list(args: argparse.Namespace, selection: DeadLetterSelection, dead: DeadLetters) -> int:
    tally = Tally()
    for letter in dead.read(args.topic, selection):
        tally.add(letter)
        _out(json.dumps(letter.summary()) if args.json else record_line(letter))
    summary = list_summary(args.topic, tally)
    if args.json:
        sys.stderr.write(summary + "\n")
    else:
        _out(summary)
    return 0


def _show(args: argparse.Namespace, _: DeadLetterSelection, dead: DeadLetters) -> int:
    letter = dead.get(args.topic, args.position.partition, args.position.first)
    if args.json:
        _out(json.dumps(letter.details(), indent=2))
        return 0
    _out(show_text(letter))
    return 0


def _replay(args: argparse.Namespace, selection: DeadLetterSelection, dead: DeadLetters) -> int:
    if selection.is_everything and not args.all:
        return _usage(
            "replay needs a selection (POSITION, --from-offset, --to-offset, --since, --until, "
            "--id) or --all for every record"
        )
    progress = ProgressReporter(sys.stderr)
    try:
        letters = _read_showing(progress, dead, args.topic, selection)
        results = dead.replay(
            letters,
            to=args.to,
            dry_run=args.dry_run,
            on_result=_replay_counter(progress, len(letters), dry_run=args.dry_run),
        )
    finally:
        progress.close()
    for result in results:
        _out(json.dumps(result_json(result)) if args.json else result_line(result))
    cut_short = selection.limit is not None and len(letters) >= selection.limit
    unseen = [] if cut_short else sorted(selection.event_ids - {x.event_id for x in letters})
    for event_id in unseen:
        sys.stderr.write(
            f"aegis-msg dlt: error: no dead letter of event {event_id} in {args.topic}\n"
        )
    failed = sum(not result.ok for result in results)
    summary = replay_summary(args.topic, results, failed, dry_run=args.dry_run)
    if args.json:
        sys.stderr.write(summary + "\n")
    else:
        _out(summary)
    return 1 if failed or unseen else 0


def _read_showing(
    progress: ProgressReporter, dead: DeadLetters, topic: str, selection: DeadLetterSelection
) -> list[DeadLetter]:
    """The selected dead letters, counted on a terminal as they are read."""
    began = progress.elapsed
    letters: list[DeadLetter] = []
    for letter in dead.read(topic, selection):
        letters.append(letter)
        progress.count(f"reading {topic}: {len(letters)} selected")
    seconds = progress.elapsed - began
    progress.count(f"read {topic}: {len(letters)} selected in {seconds:.2f}s", final=True)
    return letters


def _replay_counter(
    progress: ProgressReporter, total: int, *, dry_run: bool
) -> Callable[[ReplayResult], None]:
    """Count the results on a terminal: ``replayed 40/100, 1 failed``."""
    verb = "checked" if dry_run else "replayed"
    done = failed = 0

    def count(result: ReplayResult) -> None:
        nonlocal done, failed
        done += 1
        failed += not result.ok
        text = f"{verb} {done}/{total}" + (f", {failed} failed" if failed else "")
        progress.count(text, final=done == total)

    return count


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")


def _fail(message: str) -> int:
    sys.stderr.write(f"aegis-msg dlt: error: {message}\n")
    return 1


def _usage(message: str) -> int:
    sys.stderr.write(f"aegis-msg dlt: error: {message}\n")
    return 2


@contextmanager
def _client_logs(*, verbose: bool) -> Iterator[None]:
    """Show librdkafka's log lines on standard error with ``--verbose``, else hidden.

    Without this they would reach Python's last-resort handler: dozens of retried connection
    failures before the one line that says Kafka is unreachable.
    """
    level, propagate = client_logger.level, client_logger.propagate
    handler = None
    if verbose:
        handler = _stderr_handler()
        client_logger.addHandler(handler)
        client_logger.setLevel("DEBUG")
        client_logger.propagate = False
    else:
        client_logger.setLevel("CRITICAL")
    try:
        yield
    finally:
        client_logger.setLevel(level)
        client_logger.propagate = propagate
        if handler is not None:
            client_logger.removeHandler(handler)


def _stderr_handler() -> logging.Handler:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("kafka: %(message)s"))
    return handler


def _argument_type(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            return parse(text)
        except InvalidInputError as exc:
            raise argparse.ArgumentTypeError(exc.message) from exc

    return convert


def _parse_positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise InvalidInputError(f"{text!r} is not a positive number of seconds")
    return value


def _parse_count(text: str, minimum: int) -> int:
    if not text.isdigit() or int(text) < minimum:
        raise InvalidInputError(f"{text!r} is not a whole number of at least {minimum}")
    return int(text)


def _parse_record(text: str) -> OffsetRange:
    position = parse_position(text)
    if position.last != position.first:
        raise InvalidInputError(f"{text!r}: show takes one record, PARTITION:OFFSET (0:42)")
    return position


def _pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise InvalidInputError(f"-X {text!r}: expected KEY=VALUE, e.g. -X ssl.ca.location=ca.pem")
    return key.strip(), value


_position = _argument_type(parse_position)
_record = _argument_type(_parse_record)
_time = _argument_type(parse_time)
_positive = _argument_type(_parse_positive)
_offset = _argument_type(lambda text: _parse_count(text, 0))
_count = _argument_type(lambda text: _parse_count(text, 1))

"""Log lines per second to a null sink: aegis.log against structlog and stdlib JSON logging.

One process, one run, every setup writing the same event (``info("user logged in",
user_id=42, ok=True)``) to ``/dev/null``:

* ``stdlib + python-json-logger``: ``logging`` with ``pythonjsonlogger.json.JsonFormatter``
  on a ``StreamHandler``, the fields as ``extra=`` (the 1.00 of the ratios);
* ``structlog fast``: structlog's performance-chapter configuration (``merge_contextvars``,
  ``add_log_level``, ``format_exc_info``, ``TimeStamper(fmt="iso", utc=True)``,
  ``JSONRenderer(serializer=orjson.dumps)``, ``BytesLoggerFactory``,
  ``make_filtering_bound_logger``, cached), with ``request_id`` bound in contextvars;
* ``structlog -> stdlib ProcessorFormatter``: structlog routed through stdlib logging;
* ``aegis native``: ``aegis.log.get_logger`` with full context: all five ``aegis.core.context``
  fields set, one ``bind_context`` field, masking, the OpenTelemetry span lookup (no span);
* ``aegis stdlib``: a library's stdlib ``logging`` call, through aegis' root handler, same
  context.

Setups run interleaved, ``--rounds`` times each, and each reports its best round by CPU time
(``time.process_time``), so a busy neighbour on the shared machine costs every setup alike.
A last table times a filtered-out ``debug`` call.

Usage: .venv/bin/python benchmarks/log_throughput.py [--lines 50000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import time
from collections.abc import Callable
from typing import Any

import orjson
import structlog
from _results import Results, add_json_argument, figure
from pythonjsonlogger.json import JsonFormatter

from aegis.core.context import request_context
from aegis.log import (
    LogSettings,
    StreamOutput,
    bind_context,
    clear_context,
    configure_logging,
    get_logger,
    shutdown_logging,
)

Run = Callable[[int], None]


def stdlib_json(sink: io.TextIOBase) -> Run:
    """Stdlib logging with python-json-logger, on a logger of its own."""
    handler = logging.StreamHandler(sink)
    handler.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logger = logging.getLogger("bench.python_json_logger")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)

    def run(lines: int) -> None:
        for _ in range(lines):
            logger.info("user logged in", extra={"user_id": 42, "ok": True})

    return run


def structlog_fast(sink: io.BufferedWriter) -> tuple[Run, Any]:
    """The performance-chapter configuration of structlog; returns the run and its logger."""
    structlog.configure(
        cache_logger_on_first_use=True,
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.format_exc_info,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(serializer=orjson.dumps),
        ],
        logger_factory=structlog.BytesLoggerFactory(file=sink),
    )
    logger = structlog.get_logger()

    def run(lines: int) -> None:
        structlog.contextvars.bind_contextvars(request_id="r-1")
        try:
            for _ in range(lines):
                logger.info("user logged in", user_id=42, ok=True)
        finally:
            structlog.contextvars.clear_contextvars()

    return run, logger


def structlog_via_stdlib(sink: io.TextIOBase) -> Run:
    """Route structlog through stdlib logging, rendered by its ProcessorFormatter."""
    handler = logging.StreamHandler(sink)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.JSONRenderer(),
            ]
        )
    )
    target = logging.getLogger("bench.structlog_stdlib")
    target.handlers[:] = [handler]
    target.propagate = False
    target.setLevel(logging.INFO)
    logger = structlog.wrap_logger(
        target,
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        wrapper_class=structlog.stdlib.BoundLogger,
    )

    def run(lines: int) -> None:
        structlog.contextvars.bind_contextvars(request_id="r-1")
        try:
            for _ in range(lines):
                logger.info("user logged in", user_id=42, ok=True)
        finally:
            structlog.contextvars.clear_contextvars()

    return run


def in_full_context(body: Run) -> Run:
    """Run ``body`` with every aegis.core context field and one bound field set."""

    def run(lines: int) -> None:
        with request_context(
            request_id="r-1",
            correlation_id="c-1",
            user_id="u-1",
            service_name="bench",
            tenant_id="t-1",
        ):
            bind_context(route="/users/{user_id}")
            try:
                body(lines)
            finally:
                clear_context()

    return run


def aegis_native() -> Run:
    """aegis.log's own logger."""
    logger = get_logger("bench.aegis")

    def run(lines: int) -> None:
        for _ in range(lines):
            logger.info("user logged in", user_id=42, ok=True)

    return in_full_context(run)


def aegis_stdlib() -> Run:
    """A library's stdlib logger, through aegis.log's root handler."""
    logger = logging.getLogger("bench.library")

    def run(lines: int) -> None:
        for _ in range(lines):
            logger.info("user logged in", extra={"user_id": 42, "ok": True})

    return in_full_context(run)


def best_rate(runs: dict[str, Run], lines: int, rounds: int) -> dict[str, float]:
    """Lines per CPU second of each run's best round; rounds interleave the runs."""
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(rounds):
        for name, run in runs.items():
            started = time.process_time()
            run(lines)
            best[name] = min(best[name], time.process_time() - started)
    return {name: lines / seconds for name, seconds in best.items()}


def report(title: str, rates: dict[str, float], base: str) -> None:
    """Print one table: rate and ratio against ``base`` for each setup."""
    print(f"\n{title}")
    print(f"{'setup':<42} {'per second':>12} {'vs ' + base:>30}")
    for name, rate in rates.items():
        print(f"{name:<42} {rate:>12,.0f} {rate / rates[base]:>29.2f}x")


def main() -> None:
    """Measure every setup in one run and print rates and ratios."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=7)
    add_json_argument(parser)
    args = parser.parse_args()
    with open(os.devnull, "w") as text_sink, open(os.devnull, "wb") as byte_sink:  # noqa: PTH123
        configure_logging(
            LogSettings(console=None, level="INFO", service_name="bench"),
            outputs=[StreamOutput(byte_sink)],
        )
        python_json_logger = "stdlib + python-json-logger"
        fast = "structlog fast (orjson, BytesLoggerFactory)"
        fast_run, fast_logger = structlog_fast(byte_sink)
        runs = {
            python_json_logger: stdlib_json(text_sink),
            fast: fast_run,
            "structlog -> stdlib ProcessorFormatter": structlog_via_stdlib(text_sink),
            "aegis native, full context": aegis_native(),
            "aegis stdlib bridge, full context": aegis_stdlib(),
        }
        rates = best_rate(runs, args.lines, args.rounds)
        print(f"{args.lines:,} lines x {args.rounds} rounds, best round each, CPU time")
        report("JSON lines to /dev/null", rates, python_json_logger)
        print()
        print(
            f"aegis native / structlog fast: "
            f"{rates['aegis native, full context'] / rates[fast]:.2f}x (goal >= 0.90x)"
        )
        print(
            f"aegis stdlib bridge / stdlib + python-json-logger: "
            f"{rates['aegis stdlib bridge, full context'] / rates[python_json_logger]:.2f}x "
            "(goal >= 1.00x)"
        )
        aegis_logger = get_logger("bench.aegis")
        stdlib_logger = logging.getLogger("bench.python_json_logger")

        def filtered(call: Callable[[str], None]) -> Run:
            def run(lines: int) -> None:
                for _ in range(lines):
                    call("not shown")

            return run

        filtered_rates = best_rate(
            {
                "stdlib debug()": filtered(stdlib_logger.debug),
                "structlog fast debug()": filtered(fast_logger.debug),
                "aegis debug()": filtered(aegis_logger.debug),
            },
            args.lines * 10,
            args.rounds,
        )
        report("A debug() call below the level", filtered_rates, "stdlib debug()")
        shutdown_logging()  # before the sinks close
    results = Results("aegis-log", "log_throughput", ["structlog", "python-json-logger"])
    results.case(
        "JSON line, full context",
        "lines/s",
        aegis=figure("aegis native", rates["aegis native, full context"]),
        raw=figure("stdlib + python-json-logger", rates[python_json_logger]),
        peers=[figure("structlog fast", rates[fast])],
        goal=">= 0.90x structlog fast",
    )
    results.case(
        "stdlib logging call, JSON",
        "lines/s",
        aegis=figure("aegis stdlib bridge", rates["aegis stdlib bridge, full context"]),
        raw=figure("stdlib + python-json-logger", rates[python_json_logger]),
        peers=[
            figure("structlog ProcessorFormatter", rates["structlog -> stdlib ProcessorFormatter"])
        ],
        goal=">= 1.00x python-json-logger",
    )
    results.case(
        "debug() below the level",
        "calls/s",
        aegis=figure("aegis", filtered_rates["aegis debug()"]),
        raw=figure("stdlib", filtered_rates["stdlib debug()"]),
        peers=[figure("structlog fast", filtered_rates["structlog fast debug()"])],
    )
    results.write(args.json)


if __name__ == "__main__":
    main()

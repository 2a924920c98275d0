"""Database query metrics and spans from SQLAlchemy engine events (``aegis-obs[sqlalchemy]``)."""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final, cast

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from prometheus_client import CollectorRegistry, Histogram

from aegis.obs.__about__ import __version__
from aegis.obs._metrics import counter, gauge, histogram

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine, ExceptionContext
    from sqlalchemy.ext.asyncio import AsyncEngine

# The first keyword names the operation; anything else is OTHER so that statement text (and
# the values inlined in it) never becomes a label.
_OPERATIONS: Final = frozenset(
    {
        "SELECT", "INSERT", "UPDATE", "DELETE", "MERGE", "WITH", "CREATE", "ALTER", "DROP",
        "TRUNCATE", "BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "SET", "SHOW",
        "EXPLAIN", "COPY", "CALL", "LOCK",
    }
)  # fmt: skip
_STARTED_KEY: Final = "aegis_obs_query_started"
_instrumented: weakref.WeakSet[Engine] = weakref.WeakSet()


def statement_operation(statement: str | None) -> str:
    """Return the operation label of a SQL statement: its first keyword, or ``OTHER``."""
    words = (statement or "").split(None, 1)
    word = words[0].upper() if words else ""
    return word if word in _OPERATIONS else "OTHER"


def instrument_engine(
    engine: Engine | AsyncEngine,
    *,
    name: str = "default",
    registry: CollectorRegistry | None = None,
    buckets: Sequence[float] = Histogram.DEFAULT_BUCKETS,
    tracer_provider: trace.TracerProvider | None = None,
) -> None:
    """Record query and pool metrics, and a span per statement, of a SQLAlchemy engine.

    Sync and async engines alike. Each statement is a CLIENT span ``OPERATION engine`` in the
    trace that is current when it runs (the request's, the event handler's), with
    ``db.system.name``, ``db.operation.name`` and ``aegis.db.engine``; never the statement
    text or its values, which may hold personal data. A statement outside a recorded span (a
    background poll, no SDK) gets no span, so pollers do not flood the collector with traces.

    - ``aegis_db_query_duration_seconds{engine,operation}``: cursor execution time, by the
      statement's first keyword (``SELECT``, ``INSERT``..., else ``OTHER``).
    - ``aegis_db_query_errors_total{engine,operation}``: statements the database refused.
    - ``aegis_db_pool_checked_out_connections{engine}`` and
      ``aegis_db_pool_overflow_connections{engine}``: updated on every checkout and checkin.

    Instrumenting an engine twice changes nothing.

    Args:
        engine: The engine.
        name: Its ``engine`` label (``primary``, ``replica``).
        registry: Where the metrics live; the default registry when ``None``.
        buckets: Upper bounds, in seconds, of the duration histogram.
        tracer_provider: Records the statement spans; the global provider when ``None``.
    """
    from sqlalchemy import event  # optional extra

    sync_engine = cast("Engine", getattr(engine, "sync_engine", engine))
    if sync_engine in _instrumented:
        return
    _instrumented.add(sync_engine)
    duration = histogram(
        "query_duration_seconds",
        "Time the database took to execute a statement, by operation.",
        ("engine", "operation"),
        namespace="aegis",
        subsystem="db",
        registry=registry,
        buckets=buckets,
    )
    errors = counter(
        "query_errors_total",
        "Statements that failed, by operation.",
        ("engine", "operation"),
        namespace="aegis",
        subsystem="db",
        registry=registry,
    )
    checked_out = gauge(
        "pool_checked_out_connections",
        "Connections checked out of the pool.",
        ("engine",),
        namespace="aegis",
        subsystem="db",
        registry=registry,
        multiprocess_mode="livesum",
    ).labels(name)
    overflow = gauge(
        "pool_overflow_connections",
        "Connections open beyond the pool size.",
        ("engine",),
        namespace="aegis",
        subsystem="db",
        registry=registry,
        multiprocess_mode="livesum",
    ).labels(name)
    pool = sync_engine.pool
    # The global tracer follows a provider set later.
    tracer = trace.get_tracer("aegis.obs", __version__, tracer_provider=tracer_provider)
    system = sync_engine.dialect.name

    def before(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if not trace.get_current_span().is_recording():
            conn.info.setdefault(_STARTED_KEY, []).append((time.perf_counter(), None))
            return
        operation = statement_operation(statement)
        span = tracer.start_span(
            f"{operation} {name}",
            kind=SpanKind.CLIENT,
            attributes={
                "db.system.name": system,
                "db.operation.name": operation,
                "aegis.db.engine": name,
            },
        )
        conn.info.setdefault(_STARTED_KEY, []).append((time.perf_counter(), span))

    def after(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        started, span = conn.info[_STARTED_KEY].pop()
        duration.labels(name, statement_operation(statement)).observe(time.perf_counter() - started)
        if span is not None:
            span.end()

    def failed(context: ExceptionContext) -> None:
        errors.labels(name, statement_operation(context.statement)).inc()
        connection = context.connection
        if connection is not None and connection.info.get(_STARTED_KEY):
            _, span = connection.info[_STARTED_KEY].pop()
            if span is None:
                return
            error = context.original_exception
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, type(error).__name__))
            span.end()

    # Counted here rather than read from the pool: its own counter changes only after the
    # checkin event has run. Sync engines check connections out from many threads.
    lock = threading.Lock()
    in_use = 0
    pool_size: Callable[[], int] = getattr(pool, "size", lambda: in_use)

    def pool_changed(change: int) -> None:
        nonlocal in_use
        with lock:
            in_use += change
            checked_out.set(in_use)
            overflow.set(max(in_use - pool_size(), 0))

    event.listen(sync_engine, "before_cursor_execute", before)
    event.listen(sync_engine, "after_cursor_execute", after)
    event.listen(sync_engine, "handle_error", failed)
    event.listen(pool, "checkout", lambda *_: pool_changed(1))
    event.listen(pool, "checkin", lambda *_: pool_changed(-1))


__all__ = ["instrument_engine", "statement_operation"]

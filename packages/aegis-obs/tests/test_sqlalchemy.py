"""instrument_engine: query and pool metrics from a real PostgreSQL through SQLAlchemy."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client import CollectorRegistry
from sqlalchemy import create_engine, text
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.ext.asyncio import create_async_engine

from aegis.obs import instrument_engine, statement_operation

Spans = Callable[[], tuple[ReadableSpan, ...]]


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


@pytest.mark.anyio
async def test_async_engine_queries_are_timed_by_operation(
    postgres_database: str, registry: CollectorRegistry
) -> None:
    engine = create_async_engine(
        postgres_database.replace("postgresql://", "postgresql+psycopg://", 1)
    )
    instrument_engine(engine, name="primary", registry=registry)
    instrument_engine(engine, name="primary", registry=registry)  # twice changes nothing
    async with engine.begin() as connection:
        await connection.execute(text("CREATE TABLE IF NOT EXISTS obs_items (id int)"))
        await connection.execute(text("INSERT INTO obs_items VALUES (1), (2)"))
        await connection.execute(text("select count(*) from obs_items"))
        assert sample(registry, "aegis_db_pool_checked_out_connections", engine="primary") == 1
        with pytest.raises(ProgrammingError):
            await connection.execute(text("SELECT * FROM no_such_table"))
    await engine.dispose()

    def count(operation: str) -> float | None:
        labels = {"engine": "primary", "operation": operation}
        return sample(registry, "aegis_db_query_duration_seconds_count", **labels)

    assert count("INSERT") == 1
    assert count("CREATE") == 1
    assert (count("SELECT") or 0) >= 1
    assert (
        sample(registry, "aegis_db_query_errors_total", engine="primary", operation="SELECT") == 1
    )
    assert sample(registry, "aegis_db_pool_checked_out_connections", engine="primary") == 0
    assert sample(registry, "aegis_db_pool_overflow_connections", engine="primary") == 0


def test_sync_engine_is_instrumented_and_overflow_is_counted(
    postgres_database: str, registry: CollectorRegistry
) -> None:
    engine = create_engine(
        postgres_database.replace("postgresql://", "postgresql+psycopg://", 1),
        pool_size=1,
        max_overflow=2,
    )
    instrument_engine(engine, registry=registry)
    with engine.connect() as first, engine.connect() as second:
        first.execute(text("UPDATE pg_class SET relname = relname WHERE false"))
        second.execute(text("SELECT 1"))
        assert sample(registry, "aegis_db_pool_checked_out_connections", engine="default") == 2
        assert sample(registry, "aegis_db_pool_overflow_connections", engine="default") == 1
    engine.dispose()
    labels = {"engine": "default", "operation": "UPDATE"}
    assert sample(registry, "aegis_db_query_duration_seconds_count", **labels) == 1
    assert sample(registry, "aegis_db_pool_overflow_connections", engine="default") == 0


@pytest.mark.parametrize(
    ("statement", "operation"),
    [
        ("  select 1", "SELECT"),
        ("WITH x AS (SELECT 1) SELECT * FROM x", "WITH"),
        ("VACUUM", "OTHER"),
        ("", "OTHER"),
        (None, "OTHER"),
        ("/* comment */ SELECT 1", "OTHER"),
    ],
)
def test_statement_operation_is_the_first_keyword_or_other(
    statement: str | None, operation: str
) -> None:
    assert statement_operation(statement) == operation


@pytest.mark.anyio
async def test_each_statement_is_a_client_span_in_the_current_trace_without_its_text(
    postgres_database: str, registry: CollectorRegistry, spans: Spans
) -> None:
    engine = create_async_engine(
        postgres_database.replace("postgresql://", "postgresql+psycopg://", 1)
    )
    instrument_engine(engine, name="orders", registry=registry)
    async with engine.connect() as connection:  # outside any span (a poller): no span
        await connection.execute(text("SELECT 1"))
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("handler") as handler:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 'alice@example.com'"))
            with pytest.raises(ProgrammingError):
                await connection.execute(text("SELECT * FROM no_such_table"))
    await engine.dispose()

    statements = [span for span in spans() if span.kind is SpanKind.CLIENT]
    orders = [span for span in statements if span.name.endswith(" orders")]
    assert [span.name for span in orders] == ["SELECT orders", "SELECT orders"]
    ok, refused = orders
    parent = handler.get_span_context().span_id
    assert ok.parent is not None
    assert refused.parent is not None
    assert (ok.parent.span_id, refused.parent.span_id) == (parent, parent)
    assert dict(ok.attributes or {}) == {
        "db.system.name": "postgresql",
        "db.operation.name": "SELECT",
        "aegis.db.engine": "orders",
    }
    assert "alice" not in repr(ok.to_json())
    assert ok.status.status_code is StatusCode.UNSET
    assert refused.status.status_code is StatusCode.ERROR
    assert [event.name for event in refused.events] == ["exception"]

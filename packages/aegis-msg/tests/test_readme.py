"""The README's examples run as written."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import create_async_engine

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def block(heading: str) -> str:
    """The first python block after the heading."""
    section = README.split(f"## {heading}\n", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None
    return match.group(1)


def test_quick_start_publishes_and_handles_an_event() -> None:
    namespace: dict[str, Any] = {}
    exec(block("Quick start"), namespace)  # noqa: S102 - the README's own code
    assert "UserCreated" in namespace


def test_batch_handler_example_handles_every_event_in_batches() -> None:
    namespace: dict[str, Any] = {}
    exec(block("Batch handlers"), namespace)  # noqa: S102 - the README's own code
    calls = asyncio.run(namespace["main"]())
    assert sum(calls) == 250
    assert max(calls) <= 100


def test_versions_example_registers_an_upcaster_and_exports_schemas() -> None:
    events = README.split("## Events\n", 1)[1]
    code = re.findall(r"```python\n(.*?)```", events, re.DOTALL)[0]
    namespace: dict[str, Any] = {}
    exec(code, namespace)  # noqa: S102
    upcast = namespace["registry"].upcast("aegis.payment.made", 1, {"id": "p", "amount": 1.5})
    assert upcast == {"payment_id": "p", "amount_cents": 150}


def test_outbox_example_writes_and_relays_an_event(tmp_path: Path) -> None:
    namespace: dict[str, Any] = {}
    exec(block("Quick start"), namespace)  # noqa: S102 - runs its own event loop
    exec(block("Transactional outbox (`outbox` extra)"), namespace)  # noqa: S102
    exec(block("Handling an event once"), namespace)  # noqa: S102

    async def run() -> None:
        engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'app.db'}")
        await namespace["register_user"](engine, "u-1")
        await engine.dispose()

    asyncio.run(run())

"""A private event loop in a daemon thread, on which sync callers run the async cache."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

R = TypeVar("R")


class SyncBridge:
    """Runs coroutines for sync callers, from any thread, on one loop of its own.

    What runs there must be bound to that loop (a redis-py pool belongs to one loop): the cache
    keeps a twin of itself for it.
    """

    def __init__(self, name: str = "aegis-cache-sync") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, R]) -> R:
        """Run ``coroutine`` on the bridge's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def stop(self, closing: Coroutine[Any, Any, None], logger: logging.Logger) -> None:
        """Run ``closing`` (up to 5 s), then stop the loop and its thread."""
        closed = asyncio.run_coroutine_threadsafe(closing, self.loop)
        try:
            closed.result(timeout=5)
        except (concurrent.futures.TimeoutError, RuntimeError):
            logger.warning("cache: sync bridge did not close in time")
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        self.loop.close()

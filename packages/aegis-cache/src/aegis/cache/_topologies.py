"""What redis-py's Cluster and Sentinel clients lack: a bound on the commands in flight.

redis-py's standalone client waits for a free connection when its (blocking) pool is full; its
Cluster and Sentinel pools raise at once instead. Under a burst of requests that error would
count as a Redis failure and open the circuit breaker while Redis is healthy, so
:class:`CommandSlots` bounds the commands in flight and waits, up to the timeout, as the
blocking pool does. The clients themselves come from :mod:`aegis.core.redis_clients`.
"""

from __future__ import annotations

import asyncio

from redis.exceptions import ConnectionError as RedisConnectionError


class CommandSlots:
    """At most ``size`` commands in flight; a command waits up to ``timeout`` for a slot.

    Raises (on entry):
        redis.exceptions.ConnectionError: no slot came free within ``timeout`` (what a full
            blocking pool raises on a standalone server).
    """

    def __init__(self, size: int, timeout: float) -> None:
        self.size = size
        self.timeout = timeout
        self._free = asyncio.Semaphore(size)

    async def __aenter__(self) -> None:
        if not self._free.locked():
            await self._free.acquire()  # returns at once
            return
        try:
            async with asyncio.timeout(self.timeout):
                await self._free.acquire()
        except TimeoutError:
            raise RedisConnectionError(
                f"no connection came free within {self.timeout:g}s ({self.size} in use)"
            ) from None

    async def __aexit__(self, *exc_info: object) -> None:
        self._free.release()

"""Re-run a whole transaction after a transient failure, with capped exponential backoff."""

from __future__ import annotations

import asyncio
import functools
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

from aegis.db._errors import is_transient
from aegis.db._session import in_transaction

# Jitter from an instance of its own: the global generator belongs to the application (and
# Hypothesis reports a test whose examples change it from another thread).
_JITTER = random.Random()  # noqa: S311 - jitter, not a secret

P = ParamSpec("P")
T = TypeVar("T")

logger = logging.getLogger("aegis.db")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to re-run a transaction after a transient failure.

    ``retries`` extra attempts after the first; the wait before attempt *n* is
    ``min(max_delay, base_delay * 2**(n-1))`` scaled by a random factor in [0.5, 1] (jitter,
    so clients that collided do not collide again in step).
    """

    retries: int = 3
    base_delay: float = 0.02
    max_delay: float = 1.0

    def __post_init__(self) -> None:
        if self.retries < 0 or self.base_delay < 0 or self.max_delay < self.base_delay:
            raise ValueError("retries and delays must be >= 0 and max_delay >= base_delay")

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        capped = min(self.max_delay, self.base_delay * 2.0 ** (attempt - 1))
        return capped * _JITTER.uniform(0.5, 1.0)


async def call_with_retry(
    attempt: Callable[[], Awaitable[T]], policy: RetryPolicy, *, name: str
) -> T:
    """Await ``attempt()``; on a transient error wait and call it again, up to the policy."""
    tries = 0
    while True:
        tries += 1
        try:
            return await attempt()
        except Exception as exc:
            if tries > policy.retries or not is_transient(exc):
                raise
            delay = policy.delay(tries)
            logger.warning(
                "%s failed with a transient database error (%s); attempt %d of %d in %.3fs",
                name,
                exc,
                tries + 1,
                policy.retries + 1,
                delay,
            )
            await asyncio.sleep(delay)


def retry_on_transient(
    retries: int = 3, *, base_delay: float = 0.02, max_delay: float = 1.0
) -> Callable[[Callable[P, Awaitable[T]]], Callable[P, Awaitable[T]]]:
    """Re-run a decorated async function that runs one whole transaction on transient errors.

    Transient: serialization failures (40001), deadlocks (40P01), lost connections and
    SQLite's busy database.

    The function must open its own transaction (``async with db.transaction()``) so each
    attempt starts afresh. Called while a transaction is already open in the task, it runs
    once: re-running part of a transaction cannot help, the outermost retry decides.

    Example:
        >>> @retry_on_transient(retries=5)
        ... async def transfer(db: DatabaseManager, amount: int) -> None:
        ...     async with db.transaction(isolation_level="SERIALIZABLE") as session:
        ...         ...
    """
    policy = RetryPolicy(retries=retries, base_delay=base_delay, max_delay=max_delay)

    def decorate(function: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
        @functools.wraps(function)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            if in_transaction.get():
                return await function(*args, **kwargs)
            return await call_with_retry(
                lambda: function(*args, **kwargs), policy, name=function.__qualname__
            )

        return wrapper

    return decorate

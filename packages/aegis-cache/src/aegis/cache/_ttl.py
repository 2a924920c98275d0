"""Times to live: the default, and the jitter that keeps entries written together apart."""

from __future__ import annotations

import random
from datetime import timedelta

from aegis.core.errors import InvalidInputError

# Jitter from an instance of its own: the global generator belongs to the application (and
# Hypothesis reports a test whose examples change it from another thread).
_JITTER = random.Random()  # noqa: S311 - jitter, not a secret

TTL = float | int | timedelta
"""A time to live: seconds, or a ``timedelta``."""


class TtlPolicy:
    """Turns a :data:`TTL` into Redis milliseconds.

    Args:
        default_ttl: seconds, when a call gives no TTL.
        jitter: each TTL is shortened by up to this fraction, at random.
    """

    def __init__(self, default_ttl: float, jitter: float) -> None:
        self.default_ttl = default_ttl
        self.jitter = jitter

    def milliseconds(self, ttl: TTL | None, *, jitter: bool = True) -> int:
        """Milliseconds for ``ttl`` (the default when None), shortened by up to the jitter.

        Raises:
            InvalidInputError: ``ttl`` is not positive.
        """
        seconds = self.default_ttl if ttl is None else ttl
        if isinstance(seconds, timedelta):
            seconds = seconds.total_seconds()
        if seconds <= 0:
            raise InvalidInputError(
                f"ttl must be positive, got {seconds!r}", field="ttl", rule="positive"
            )
        if jitter and self.jitter:
            seconds *= 1 - self.jitter * _JITTER.random()
        return max(1, int(seconds * 1000))

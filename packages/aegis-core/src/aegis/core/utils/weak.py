"""One value per object, built on first use and forgotten with the object.

aegis-obs, -auth, -cache and -msg each declare their Prometheus metric families once per
registry (Prometheus refuses a name twice); this is that cache, without a prometheus import.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Generic, TypeVar

_K = TypeVar("_K")
_V = TypeVar("_V")


class OncePerObject(Generic[_K, _V]):
    """Call ``build(key)`` once per key object; later calls with that object return the result.

    Keys are held weakly (a registry a test drops takes its value with it) and compared as dict
    keys: by identity for objects that define no equality, such as Prometheus registries.
    Thread-safe: ``build`` runs once per key even
    when threads ask at the same time.

    Example:
        >>> lengths = OncePerObject(lambda key: len(key.name))
        >>> class Named:
        ...     name = "orders"
        >>> lengths(Named())
        6
    """

    def __init__(self, build: Callable[[_K], _V]) -> None:
        self._build = build
        self._values: weakref.WeakKeyDictionary[_K, _V] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def __call__(self, key: _K) -> _V:
        """Return the value for ``key``, building it on the first call."""
        try:
            return self._values[key]
        except KeyError:
            pass
        with self._lock:
            if key not in self._values:
                self._values[key] = self._build(key)
            return self._values[key]

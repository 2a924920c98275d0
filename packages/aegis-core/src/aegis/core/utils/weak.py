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
    Thread-safe: ``build`` runs once per key even when threads ask at the same time. A call may
    pass its own ``build`` (used only if the key has no value yet), for values whose recipe
    depends on the call, such as settings of the first caller. If ``build`` raises, nothing is
    kept and the next call tries again.

    Example:
        >>> lengths = OncePerObject(lambda key: len(key.name))
        >>> class Named:
        ...     name = "orders"
        >>> lengths(Named())
        6
    """

    def __init__(self, build: Callable[[_K], _V] | None = None) -> None:
        self._build = build
        self._values: weakref.WeakKeyDictionary[_K, _V] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def __call__(self, key: _K, build: Callable[[_K], _V] | None = None) -> _V:
        """Return the value for ``key``, built by ``build`` (or the one given at creation) first.

        Raises:
            TypeError: ``key`` has no value yet and no ``build`` was given here or at creation.
        """
        try:
            return self._values[key]
        except KeyError:
            pass
        build = build or self._build
        if build is None:
            raise TypeError("OncePerObject has no build function: pass build= here or at creation")
        with self._lock:
            if key not in self._values:
                self._values[key] = build(key)
            return self._values[key]

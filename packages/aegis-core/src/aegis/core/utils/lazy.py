"""Module attributes imported on first use (PEP 562): public names that need an optional extra.

Example:
    >>> __getattr__ = lazy_getattr(__name__, {"Outbox": "aegis.msg._outbox"})
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping


def lazy_getattr(package: str, names: Mapping[str, str]) -> Callable[[str], object]:
    """Return a module ``__getattr__`` that imports ``names[name]`` when ``name`` is first read.

    A package re-exports names whose modules import an optional library this way, so importing
    the package itself stays free of that library until a caller uses one of those names.

    Args:
        package: the module's ``__name__``, for the error of an unknown attribute.
        names: each lazily loaded attribute and the module that defines it.
    """
    table = dict(names)

    def __getattr__(name: str) -> object:  # noqa: N807 - the PEP 562 hook has this name
        module = table.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module), name)

    return __getattr__


__all__ = ["lazy_getattr"]

"""Module attributes imported on first use (PEP 562), and clear errors for a missing extra.

Example:
    >>> __getattr__ = lazy_getattr(
    ...     __name__, {"Outbox": "aegis.msg._outbox"}, extras={"sqlalchemy": "aegis-msg[outbox]"}
    ... )
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager


def _top_level(module: str | None) -> str:
    return (module or "").partition(".")[0]


def missing_extra(
    error: ImportError, extras: Mapping[str, str], needed_by: str
) -> ModuleNotFoundError | None:
    """The error to raise when ``needed_by`` failed to import a library an extra provides.

    Returns ``None`` when ``error`` is about a module ``extras`` does not name (a genuine bug
    elsewhere, which must surface unchanged).

    Args:
        error: the ``ImportError`` the import raised.
        extras: each optional top-level module and the requirement that installs it, e.g.
            ``{"fastapi": "aegis-auth[fastapi]"}``.
        needed_by: what needed it, for the message (``aegis.auth.CurrentUser``).
    """
    missing = _top_level(error.name)
    requirement = extras.get(missing)
    if not isinstance(error, ModuleNotFoundError) or requirement is None:
        return None
    return ModuleNotFoundError(
        f"{needed_by} needs {missing}, which is not installed: pip install '{requirement}'",
        name=error.name,
    )


@contextmanager
def extra_required(needed_by: str, extras: Mapping[str, str]) -> Iterator[None]:
    """Turn a missing optional library imported in the block into an error naming the extra.

    A module that needs an extra wraps its imports in it, so ``No module named 'starlette'``
    becomes ``aegis.core.web needs starlette, which is not installed: pip install
    'aegis-core[web]'`` (a ``ModuleNotFoundError``, so ``except ImportError`` still works).

    Example:
        >>> with extra_required(__name__, {"starlette": "aegis-core[web]"}):
        ...     from starlette.responses import JSONResponse
    """
    try:
        yield
    except ImportError as exc:
        replacement = missing_extra(exc, extras, needed_by)
        if replacement is None:
            raise
        raise replacement from exc


def lazy_getattr(
    package: str, names: Mapping[str, str], *, extras: Mapping[str, str] | None = None
) -> Callable[[str], object]:
    """Return a module ``__getattr__`` that imports ``names[name]`` when ``name`` is first read.

    A package re-exports names whose modules import an optional library this way, so importing
    the package itself stays free of that library until a caller uses one of those names.

    Args:
        package: the module's ``__name__``, for the error of an unknown attribute.
        names: each lazily loaded attribute and the module that defines it.
        extras: each optional top-level library those modules import and the requirement that
            installs it (``{"fastapi": "aegis-auth[fastapi]"}``): when one is missing, reading
            the name raises a ``ModuleNotFoundError`` that says what to ``pip install``.
    """
    table = dict(names)
    requirements = dict(extras or {})

    def __getattr__(name: str) -> object:  # noqa: N807 - the PEP 562 hook has this name
        module = table.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        with extra_required(f"{package}.{name}", requirements):
            return getattr(importlib.import_module(module), name)

    return __getattr__


__all__ = ["extra_required", "lazy_getattr", "missing_extra"]

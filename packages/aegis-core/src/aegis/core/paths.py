"""One language for every "these paths" option: exact paths, ``prefix*`` and ``METHOD path``.

aegis-auth's ``public_paths``, aegis-obs's ``exclude_paths`` and aegis-log's ``skip_paths``
all take the same patterns, compiled once into a :class:`PathMatcher`:

- ``/health``: that exact path, any method;
- ``/docs*``: every path starting with ``/docs`` (the ``*`` only at the end);
- ``POST /users``: one method on one exact path (sign-up is public, ``GET /users`` is not);
- ``GET /files/*``: one method on every path with that prefix.

Methods are matched case-insensitively; paths exactly (the ASGI ``path``, no query string).
A WebSocket has no method: only the method-free patterns match it.

Example:
    >>> public = PathMatcher(["/health*", "POST /users"])
    >>> public.matches("GET", "/health/ready"), public.matches("GET", "/users")
    (True, False)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

from aegis.core.errors import ConfigurationError

_METHOD: Final = re.compile(r"[A-Za-z]{1,20}")


class PathMatcher:
    """A compiled set of path patterns (see the module docstring) that matches fast.

    An exact path costs one set lookup; prefixes one ``str.startswith`` over a tuple; method
    patterns are looked up only when some were given.

    Args:
        patterns: the patterns; an empty collection matches nothing.

    Raises:
        ConfigurationError: a pattern is empty, does not start with ``/`` after its method,
            holds a ``*`` anywhere but at its end, or has a method that is not a word.

    Example:
        >>> PathMatcher(["/metrics", "GET /docs*"]).matches("GET", "/docs/oauth2-redirect")
        True
    """

    __slots__ = ("_exact", "_method_exact", "_method_prefixes", "_patterns", "_prefixes")

    def __init__(self, patterns: Iterable[str]) -> None:
        self._patterns = tuple(patterns)
        exact: set[str] = set()
        prefixes: list[str] = []
        method_exact: set[tuple[str, str]] = set()
        method_prefixes: dict[str, list[str]] = {}
        for pattern in self._patterns:
            method, path = _parse(pattern)
            prefix = path[:-1] if path.endswith("*") else None
            if method is None and prefix is None:
                exact.add(path)
            elif method is None:
                prefixes.append(str(prefix))
            elif prefix is None:
                method_exact.add((method, path))
            else:
                method_prefixes.setdefault(method, []).append(prefix)
        self._exact = frozenset(exact)
        self._prefixes = tuple(prefixes)
        self._method_exact = frozenset(method_exact)
        self._method_prefixes = {m: tuple(p) for m, p in method_prefixes.items()}

    @property
    def patterns(self) -> tuple[str, ...]:
        """The patterns, as given."""
        return self._patterns

    def __bool__(self) -> bool:
        """Whether any pattern was given."""
        return bool(self._patterns)

    def __repr__(self) -> str:
        return f"PathMatcher({list(self._patterns)!r})"

    def matches(self, method: str | None, path: str) -> bool:
        """Whether ``path`` (requested with ``method``; ``None`` for a WebSocket) matches."""
        if path in self._exact or (self._prefixes and path.startswith(self._prefixes)):
            return True
        if method is None or not (self._method_exact or self._method_prefixes):
            return False
        method = method.upper()
        if (method, path) in self._method_exact:
            return True
        prefixes = self._method_prefixes.get(method)
        return prefixes is not None and path.startswith(prefixes)

    def matches_scope(self, scope: Mapping[str, Any]) -> bool:
        """Whether the ASGI HTTP or WebSocket ``scope`` matches."""
        return self.matches(scope.get("method"), scope.get("path", ""))


def _parse(pattern: str) -> tuple[str | None, str]:
    if not isinstance(pattern, str) or not pattern.strip():
        raise ConfigurationError(f"path pattern {pattern!r} is empty: write /path, /prefix*")
    method: str | None = None
    path = pattern.strip()
    if " " in path:
        word, _, path = path.partition(" ")
        path = path.strip()
        if not _METHOD.fullmatch(word):
            raise ConfigurationError(
                f"path pattern {pattern!r}: {word!r} is not an HTTP method (write 'POST /users')"
            )
        method = word.upper()
    if not path.startswith("/"):
        raise ConfigurationError(
            f"path pattern {pattern!r}: the path must start with '/' (write '/health*')"
        )
    if "*" in path[:-1]:
        raise ConfigurationError(
            f"path pattern {pattern!r}: '*' is allowed only at the end, as a prefix"
        )
    return method, path


__all__ = ["PathMatcher"]

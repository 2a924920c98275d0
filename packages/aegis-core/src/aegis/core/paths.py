"""One language for every "these paths" option: exact paths, ``prefix*`` and ``METHOD path``.

aegis-auth's ``public_paths``, aegis-obs's ``exclude_paths`` and aegis-log's ``skip_paths``
all take the same patterns, compiled once into a :class:`PathMatcher`:

- ``/health``: that exact path, any method;
- ``/docs*``: every path starting with ``/docs`` (the ``*`` only at the end);
- ``POST /users``: one method on one exact path (sign-up is public, ``GET /users`` is not);
- ``GET /files/*``: one method on every path with that prefix.

A pattern's method may be written in any case (``post /users``); the request's method is
compared as sent, since HTTP methods are case-sensitive. Paths match exactly (the ASGI
``path``, no query string).
A WebSocket has no method: only the method-free patterns match it.

Example:
    >>> public = PathMatcher(["/health*", "POST /users"])
    >>> public.matches("GET", "/health/ready"), public.matches("GET", "/users")
    (True, False)

:func:`route_template` names the route of a request for metrics and access lines, also when
the router never recorded it (a request refused before routing, a plain Starlette ``Route``
inside a FastAPI router). Neither needs Starlette: the routes are used by their shape.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any, Final

from aegis.core.errors import ConfigurationError

_METHOD: Final = re.compile(r"[A-Za-z]{1,20}")
# starlette.routing.Match, by value: this module must not need Starlette.
_MATCH_PARTIAL: Final = 1
_MATCH_FULL: Final = 2
_MOUNT_SUFFIX: Final = "/{path}"

ROUTE_TEMPLATE_KEY: Final = "aegis.route_template"
"""Where :func:`route_template` keeps its answer in the scope, for the next middleware."""


class PathMatcher:
    """A compiled set of path patterns (see the module docstring) that matches fast.

    An exact path costs one set lookup; prefixes one ``str.startswith`` over a tuple; method
    patterns one dict lookup, and only when some were given.

    Args:
        patterns: the patterns; an empty collection matches nothing.

    Raises:
        ConfigurationError: a pattern is empty, does not start with ``/`` after its method,
            holds a ``*`` anywhere but at its end, or has a method that is not a word.

    Example:
        >>> PathMatcher(["/metrics", "GET /docs*"]).matches("GET", "/docs/oauth2-redirect")
        True
    """

    __slots__ = ("_by_method", "_exact", "_patterns", "_prefixes")

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
        by_method: dict[str, tuple[frozenset[str], tuple[str, ...]]] = {}
        for name in {m for m, _ in method_exact} | method_prefixes.keys():
            paths = frozenset(path for m, path in method_exact if m == name)
            by_method[name] = (paths, tuple(method_prefixes.get(name, ())))
        self._by_method = by_method or None

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
        if path in self._exact:
            return True
        prefixes = self._prefixes
        if prefixes and path.startswith(prefixes):
            return True
        by_method = self._by_method
        if by_method is None or method is None:
            return False
        # The request's method as sent: HTTP methods are case-sensitive (RFC 9110 9.1).
        rules = by_method.get(method)
        return rules is not None and (path in rules[0] or path.startswith(rules[1]))

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


def route_template(scope: MutableMapping[str, Any]) -> str | None:
    """The route template (``/users/{user_id}``, mount prefixes included) of a request.

    The route the router recorded as ``scope["route"]``, when it did; otherwise the route the
    application's router (``scope["app"].router``) would pick for this scope, found by
    matching its routes (a full match first, else the first partial one: a 405), so a request
    refused before routing (a 401, a 429) and a plain Starlette ``Route`` inside a FastAPI
    router are labelled with their route too. ``None`` when no route matches (a 404). The
    answer is kept in the scope under :data:`ROUTE_TEMPLATE_KEY`: a second middleware asking
    pays nothing. Call it once the app has answered (the router may set the route until then).

    Example:
        >>> route_template(scope)  # in a middleware, after the auth middleware answered 401
        '/users/{user_id}'
    """
    found = scope.get(ROUTE_TEMPLATE_KEY)
    if found is not None:
        return str(found) or None
    # A Mount moves root_path on by its prefix and keeps the application's in app_root_path.
    root_path = str(scope.get("root_path", ""))
    app_root_path = str(scope.get("app_root_path", root_path))
    recorded = scope.get("route")
    template = getattr(recorded, "path_format", None)
    if isinstance(template, str) and not template.endswith(_MOUNT_SUFFIX):
        template = root_path[len(app_root_path) :] + template
    else:
        app = scope.get("app")
        routes = getattr(getattr(app, "router", None), "routes", None)
        top = {**scope, "root_path": app_root_path}
        template = _match(routes, top, "") if routes is not None else None
    scope[ROUTE_TEMPLATE_KEY] = template or ""
    return template


def _match(routes: Iterable[Any], scope: dict[str, Any], prefix: str) -> str | None:
    partial: tuple[Any, dict[str, Any]] | None = None
    for route in routes:
        matches = getattr(route, "matches", None)
        if matches is None:
            continue
        match, child = matches(scope)
        match = getattr(match, "value", match)
        if match == _MATCH_FULL:
            return _template(route, child, scope, prefix)
        if match == _MATCH_PARTIAL and partial is None:
            partial = (route, child)
    return _template(*partial, scope, prefix) if partial is not None else None


def _template(route: Any, child: dict[str, Any], scope: dict[str, Any], prefix: str) -> str | None:
    selected = child.get("route", route)
    path_format = getattr(selected, "path_format", None)
    if not isinstance(path_format, str):
        return None
    inner_routes = getattr(selected, "routes", None)
    if path_format.endswith(_MOUNT_SUFFIX) and inner_routes is not None:  # a Mount
        return _match(inner_routes, {**scope, **child}, prefix + path_format[: -len(_MOUNT_SUFFIX)])
    return prefix + path_format


__all__ = ["ROUTE_TEMPLATE_KEY", "PathMatcher", "route_template"]

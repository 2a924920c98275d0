"""Role-based access control: roles that inherit roles, and the permissions each one grants.

A :class:`RolePolicy` is loaded once (from code, a dict or YAML) and checked whole on load: an
unknown parent, a malformed permission or a cycle in the hierarchy is a
:class:`~aegis.core.errors.ConfigurationError` naming the role, not a surprise at request time.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aegis.auth._claims import text_collection
from aegis.core.errors import ConfigurationError, InvalidInputError
from aegis.core.models import Permission
from aegis.core.utils.lazy import extra_required

_ROLE_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_CACHE_LIMIT = 1024  # distinct role combinations remembered; real services have a handful


@dataclass(frozen=True)
class RoleDefinition:
    """One role: its name, the roles it includes, and the permissions it grants itself.

    Example:
        >>> RoleDefinition("manager", inherits=("user",), permissions=("policy:*",))
    """

    name: str
    inherits: tuple[str, ...] = ()
    permissions: tuple[str, ...] = ()


class RolePolicy:
    """A role hierarchy with permissions: ``admin`` ⊇ ``manager`` ⊇ ``user``.

    A role holds every role it inherits, transitively, and every permission those roles grant.
    Roles a token names that the policy does not define are kept as they are and grant nothing.

    Args:
        roles: the role definitions.

    Raises:
        ConfigurationError: a duplicate or malformed role name, an unknown inherited role, a
            malformed permission, or a cycle (the message shows it: ``a -> b -> a``).

    Example:
        >>> policy = RolePolicy.from_dict(
        ...     {
        ...         "roles": {
        ...             "admin": {"inherits": ["manager"], "permissions": ["*:*"]},
        ...             "manager": {"inherits": ["user"], "permissions": ["policy:*"]},
        ...             "user": {"permissions": ["*:read"]},
        ...         }
        ...     }
        ... )
        >>> sorted(policy.expand_roles(["manager"]))
        ['manager', 'user']
    """

    def __init__(self, roles: Iterable[RoleDefinition]) -> None:
        self._roles: dict[str, RoleDefinition] = {}
        for role in roles:
            if not isinstance(role.name, str) or not _ROLE_NAME.fullmatch(role.name):
                raise ConfigurationError(
                    f"role name {str(role.name)[:64]!r} must be 1-64 of A-Z a-z 0-9 _ . : -"
                )
            if role.name in self._roles:
                raise ConfigurationError(f"role {role.name!r} is defined twice")
            self._roles[role.name] = role
        for role in self._roles.values():
            unknown = [parent for parent in role.inherits if parent not in self._roles]
            if unknown:
                raise ConfigurationError(
                    f"role {role.name!r} inherits undefined role(s) {unknown}; "
                    f"defined: {sorted(self._roles)}"
                )
            for permission in role.permissions:
                try:
                    Permission(permission)
                except InvalidInputError as exc:
                    raise ConfigurationError(
                        f"role {role.name!r}: {exc.message}", details={"role": role.name}
                    ) from exc
        self._closure = {name: self._walk(name) for name in self._roles}
        self._granted = {
            name: frozenset(
                Permission(permission)
                for member in members
                for permission in self._roles[member].permissions
            )
            for name, members in self._closure.items()
        }
        self._cache: dict[frozenset[str], tuple[frozenset[str], frozenset[str]]] = {}

    def _walk(self, start: str) -> frozenset[str]:
        # Depth-first with the current path on a stack, so a cycle is reported as its path.
        reached: set[str] = set()
        path: list[str] = []

        def visit(name: str) -> None:
            if name in path:
                cycle = [*path[path.index(name) :], name]
                raise ConfigurationError(f"role hierarchy has a cycle: {' -> '.join(cycle)}")
            if name in reached:
                return
            path.append(name)
            for parent in self._roles[name].inherits:
                visit(parent)
            path.pop()
            reached.add(name)

        visit(start)
        return frozenset(reached)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RolePolicy:
        """Load ``{"roles": {name: {"inherits": [...], "permissions": [...]}}}``.

        Raises:
            ConfigurationError: the document has another shape (the message names where).
        """
        roles = data.get("roles") if isinstance(data, Mapping) else None
        if not isinstance(roles, Mapping):
            raise ConfigurationError("a role policy needs a 'roles' mapping of role name -> role")
        definitions = []
        for name, value in roles.items():
            body = {} if value is None else value
            if not isinstance(body, Mapping) or set(body) - {"inherits", "permissions"}:
                raise ConfigurationError(
                    f"role {name!r} must be a mapping with only 'inherits' and 'permissions'"
                )
            lists = {}
            for member in ("inherits", "permissions"):
                items = body.get(member) or []
                if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
                    raise ConfigurationError(f"role {name!r}: {member!r} must be a list of text")
                lists[member] = tuple(items)
            definitions.append(RoleDefinition(str(name), lists["inherits"], lists["permissions"]))
        return cls(definitions)

    @classmethod
    def from_yaml(cls, source: str | Path) -> RolePolicy:
        """Load a policy from a YAML file (a :class:`~pathlib.Path`) or YAML text.

        Needs the ``yaml`` extra. The document has the shape :meth:`from_dict` reads.
        """
        with extra_required("RolePolicy.from_yaml", {"yaml": "aegis-auth[yaml]"}):
            import yaml  # optional dependency, needed only here

        text = source.read_text(encoding="utf-8") if isinstance(source, Path) else source
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigurationError(f"role policy is not valid YAML: {exc}") from exc
        return cls.from_dict(data if isinstance(data, Mapping) else {})

    @property
    def roles(self) -> list[str]:
        """Every defined role name."""
        return list(self._roles)

    def expand_roles(self, roles: Iterable[str]) -> frozenset[str]:
        """Return ``roles`` with every role they inherit, transitively."""
        return self._resolve(frozenset(text_collection(roles, "roles")))[0]

    def permissions_for(self, roles: Iterable[str]) -> frozenset[str]:
        """Return every permission ``roles`` grant, through inheritance."""
        return self._resolve(frozenset(text_collection(roles, "roles")))[1]

    def _resolve(self, roles: frozenset[str]) -> tuple[frozenset[str], frozenset[str]]:
        cached = self._cache.get(roles)
        if cached is not None:
            return cached
        expanded: set[str] = set(roles)
        granted: set[str] = set()
        for role in roles:
            expanded |= self._closure.get(role, frozenset())
            granted |= self._granted.get(role, frozenset())
        result = (frozenset(expanded), frozenset(granted))
        if len(self._cache) < _CACHE_LIMIT:
            self._cache[roles] = result
        return result

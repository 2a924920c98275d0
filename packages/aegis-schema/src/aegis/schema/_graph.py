"""Which services and tables depend on which, through references; cycles; migration order."""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping

from aegis.schema._errors import DependencyCycleError
from aegis.schema._models import SchemaDefinition


class DependencyGraph:
    """Dependencies between services (and tables) that references create.

    A service depends on another when one of its tables references one of the other's; a
    reference inside one service is not a service dependency.
    """

    def __init__(self, schemas: Iterable[SchemaDefinition]) -> None:
        self._services: dict[str, set[str]] = {}
        self._tables: dict[str, set[str]] = {}
        for schema in schemas:
            self._services.setdefault(schema.service, set())
            self._tables.setdefault(schema.key, set())
            for reference in schema.references:
                if reference.target_key != schema.key:
                    self._tables[schema.key].add(reference.target_key)
                if reference.target_service != schema.service:
                    self._services[schema.service].add(reference.target_service)
        self._service_dependents = _reverse(self._services)
        self._table_dependents = _reverse(self._tables)

    @property
    def services(self) -> list[str]:
        """Every service with at least one table, or referenced by one, sorted."""
        return sorted(self._service_dependents)

    def edges(self) -> list[tuple[str, str]]:
        """``(service, dependency)`` pairs, sorted."""
        return sorted((a, b) for a, targets in self._services.items() for b in targets)

    def dependencies(self, service: str, *, transitive: bool = False) -> list[str]:
        """The services ``service`` references (with ``transitive``, theirs too), sorted."""
        return _neighbours(self._services, service, transitive=transitive)

    def dependents(self, service: str, *, transitive: bool = False) -> list[str]:
        """The services that reference ``service`` (with ``transitive``, theirs too), sorted."""
        return _neighbours(self._service_dependents, service, transitive=transitive)

    def table_dependents(self, key: str, *, transitive: bool = False) -> list[str]:
        """The tables (``service.table``) that reference table ``key``, sorted."""
        return _neighbours(self._table_dependents, key, transitive=transitive)

    def cycles(self) -> list[list[str]]:
        """Every group of services that depend on each other, each as one cycle path."""
        return _cycles(self._services)

    def order(self) -> list[str]:
        """Services in migration order: each after every service it depends on.

        Raises:
            DependencyCycleError: the services depend on each other in a cycle (named).
        """
        return _topological(self._services, what="services")

    def table_order(self, keys: Iterable[str] | None = None) -> list[str]:
        """Tables (``service.table``) in migration order, restricted to ``keys`` when given.

        Raises:
            DependencyCycleError: the tables reference each other in a cycle (named).
        """
        if keys is None:
            return _topological(self._tables, what="tables")
        wanted = set(keys)
        edges = {key: self._tables.get(key, set()) & wanted for key in wanted}
        return _topological(edges, what="tables")


def _reverse(edges: Mapping[str, set[str]]) -> dict[str, set[str]]:
    reverse: dict[str, set[str]] = {node: set() for node in edges}
    for node, targets in edges.items():
        for target in targets:
            reverse.setdefault(target, set()).add(node)
    return reverse


def _neighbours(edges: Mapping[str, set[str]], start: str, *, transitive: bool) -> list[str]:
    direct = edges.get(start, set())
    if not transitive:
        return sorted(direct)
    seen: set[str] = set()
    pending = list(direct)
    while pending:
        node = pending.pop()
        if node not in seen:
            seen.add(node)
            pending.extend(edges.get(node, set()))
    seen.discard(start)
    return sorted(seen)


def _topological(edges: Mapping[str, set[str]], *, what: str) -> list[str]:
    """Kahn's algorithm, smallest name first among the ready ones, so the order is stable."""
    waiting = {node: len(targets) for node, targets in edges.items()}
    for targets in edges.values():
        for target in targets:
            waiting.setdefault(target, 0)
    dependents = _reverse(edges)
    ready = [node for node, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        node = heapq.heappop(ready)
        order.append(node)
        for dependent in dependents.get(node, ()):
            waiting[dependent] -= 1
            if waiting[dependent] == 0:
                heapq.heappush(ready, dependent)
    if len(order) < len(waiting):
        raise DependencyCycleError(_cycles(edges)[0], what=what)
    return order


def _cycles(edges: Mapping[str, set[str]]) -> list[list[str]]:
    """One cycle path per strongly connected component (iterative Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges.get(root, ()))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in edges.get(node, ()):
                    components.append(component)
    return sorted(_cycle_path(edges, set(component)) for component in components)


def _cycle_path(edges: Mapping[str, set[str]], component: set[str]) -> list[str]:
    """Walk from the smallest member back to it inside its component (breadth-first)."""
    start = min(component)
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following: list[str] = []
        for node in frontier:
            for target in sorted(edges.get(node, set()) & component):
                if target == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return path[::-1]
                if target not in previous:
                    previous[target] = node
                    following.append(target)
        frontier = following
    raise AssertionError("a strongly connected component always closes a cycle")

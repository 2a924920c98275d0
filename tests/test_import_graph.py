"""No member has an import cycle, and no import hides inside a function without a reason.

For each member, every module under ``packages/*/src/aegis/*/`` is read with :mod:`ast` (nothing
is imported, but for rule 3 below). An import is a statement anywhere in a module: at the top,
in a class, or inside a function; one under ``if TYPE_CHECKING:`` is left out (it never runs).

Cycles: the graph has an edge from a module to each module of the same member it imports (``from
aegis.x import name`` is an edge to ``aegis.x._name`` when that is a module, else to the package
``aegis.x``). Every strongly connected component of more than one module, or a module importing
itself, is a cycle.

Imports inside a function: one is allowed only when the module it imports is *optional* for the
member, that is, may be missing when the member is installed without extras, or *deferred for
import time*:

1. a module of a distribution the member does not require: the distribution that installs the
   module's top-level package (``aegis.x`` is ``aegis-x``) is not in the member's
   ``[project] dependencies``, nor in those of the aegis members it requires, followed
   recursively with the extras it asks of them (``aegis-core[crypto]`` requires what the crypto
   extra lists). The third-party distributions' own dependencies are not followed;
2. or an aegis module that imports an optional module (1) at its top level, directly or through
   other aegis modules (aegis-config imports ``aegis.core.utils.security``, which imports
   cryptography, the ``crypto`` extra of aegis-core);
3. or a module deferred for import time: the import carries a ``# lazy: <why>`` comment (on
   one of its lines, or alone on the line above it), and ``import aegis.x`` (the member's
   package, in a fresh interpreter) does not load that module, so deferring it saves what
   loading it costs. The reason says what is saved (``# lazy: only the session's dialect``);
   benchmarks/import_time.py measures the packages' import cost.

Any other module (of the standard library, of a required distribution, a plain aegis module)
could be imported at the top, so importing it inside a function is a violation. Ruff's PLC0415
is off in pyproject.toml: this test is the check.
"""

from __future__ import annotations

import ast
import io
import subprocess
import sys
import tokenize
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from importlib.metadata import (
    PackageNotFoundError,
    distribution,
    packages_distributions,
    requires,
)
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
from members import Member, load_members

ROOT = Path(__file__).resolve().parent.parent
MEMBERS = load_members(ROOT)

LAZY_MARKER = "# lazy:"
"""The comment that marks an import deferred for import time (rule 3 above)."""


@dataclass(frozen=True)
class Import:
    """One import statement: the module it is in, what it imports, where and how."""

    module: str
    target: str
    line: int
    in_function: bool
    lazy: bool = False
    """The statement carries the ``# lazy:`` comment."""


def _modules(source_root: Path) -> dict[str, Path]:
    """``{dotted module name: file}`` of every module under ``source_root/aegis/<name>/``."""
    found: dict[str, Path] = {}
    for path in sorted(source_root.glob("aegis/*/**/*.py")):
        parts = list(path.relative_to(source_root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(node: ast.AST, *, in_function: bool) -> Iterator[tuple[ast.AST, bool]]:
    """Every import node under ``node``, with whether it is inside a function."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for other in child.orelse:
                yield from _walk(other, in_function=in_function)
            continue
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child, in_function
        inside = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
        yield from _walk(child, in_function=inside)


def _lazy_lines(source: str) -> set[int]:
    """The lines an import marked ``# lazy:`` may start or go on at.

    A line ending with the marker counts for itself; a line that holds nothing but the marker
    comment counts for the line below it.
    """
    lines: set[int] = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT and token.string.startswith(LAZY_MARKER):
            alone = token.line.strip() == token.string.strip()
            lines.add(token.start[0] + 1 if alone else token.start[0])
    return lines


def _imports(module: str, path: Path, known: set[str]) -> list[Import]:
    """The imports of ``module``; ``known`` are module names ``from x import y`` may name."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    source = path.read_text()
    lazy_lines = _lazy_lines(source)
    found: list[Import] = []
    for node, in_function in _walk(ast.parse(source, str(path)), in_function=False):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                targets.append(submodule if submodule in known else base)
        assert isinstance(node, ast.stmt)
        lines = range(node.lineno, (node.end_lineno or node.lineno) + 1)
        lazy = not lazy_lines.isdisjoint(lines)
        found += [Import(module, target, node.lineno, in_function, lazy) for target in targets]
    return found


@dataclass(frozen=True)
class Workspace:
    """Every member's modules and imports, read once."""

    modules: dict[str, Path]
    imports: dict[str, list[Import]]


@cache
def _workspace() -> Workspace:
    modules: dict[str, Path] = {}
    for member in MEMBERS.values():
        if (member.path / "src").is_dir():
            modules.update(_modules(member.path / "src"))
    known = set(modules)
    return Workspace(modules, {name: _imports(name, path, known) for name, path in modules.items()})


def _aegis_member(module: str) -> str:
    """``aegis.cache._client`` -> ``aegis-cache``."""
    return "aegis-" + module.split(".")[1]


def _active(requirement: Requirement, extras: set[str]) -> bool:
    marker = requirement.marker
    return marker is None or any(marker.evaluate({"extra": extra}) for extra in {"", *extras})


@cache
def _required(member: str) -> frozenset[str]:
    """Normalised names of the distributions always installed with ``member`` (see the top)."""
    seen: dict[str, set[str]] = {}
    pending = [Requirement(MEMBERS[member].name)]
    while pending:
        requirement = pending.pop()
        name = canonicalize_name(requirement.name)
        extras = set(requirement.extras)
        if name in seen and extras <= seen[name]:
            continue
        seen[name] = seen.get(name, set()) | extras
        if name in MEMBERS:
            project = MEMBERS[name].project
            optional: dict[str, list[str]] = project.get("optional-dependencies", {})  # type: ignore[assignment]
            lines: list[str] = list(project.get("dependencies", []))  # type: ignore[call-overload]
            for extra in extras:
                lines += optional.get(extra, [])
        else:
            try:
                lines = requires(name) or []
            except PackageNotFoundError:
                lines = []
        pending += [r for r in map(Requirement, lines) if _active(r, extras)]
    return frozenset(seen)


@cache
def _distributions(module: str) -> frozenset[str]:
    """Normalised names of the installed distributions that provide ``module``.

    A top-level package several distributions share (``opentelemetry``) is narrowed down by
    the files each of them installs.
    """
    top = module.partition(".")[0]
    names = _top_level_owners().get(top, [])
    if len(names) < 2 or module == top:  # one owner, or none installed
        return frozenset(canonicalize_name(name) for name in names)
    path = module.replace(".", "/")
    owners = set()
    for name in names:
        files = {str(file) for file in distribution(name).files or []}
        if {f"{path}.py", f"{path}/__init__.py"} & files:
            owners.add(canonicalize_name(name))
    return frozenset(owners) or _distributions(module.rpartition(".")[0])


@cache
def _top_level_owners() -> Mapping[str, list[str]]:
    return packages_distributions()


def _distribution_is_optional(target: str, required: frozenset[str]) -> bool:
    top = target.partition(".")[0]
    if top in sys.stdlib_module_names:
        return False
    if top == "aegis":
        return _aegis_member(target) not in required
    return not _distributions(target) & required


def _is_optional(
    target: str, required: frozenset[str], visiting: frozenset[str] = frozenset()
) -> bool:
    """Whether ``target`` may be missing when the member that requires ``required`` is installed."""
    if _distribution_is_optional(target, required):
        return True
    workspace = _workspace()
    if target not in workspace.modules or target in visiting:
        return False
    return any(
        _is_optional(found.target, required, visiting | {target})
        for found in workspace.imports[target]
        if not found.in_function
    )


@cache
def _loaded_by(package: str) -> frozenset[str]:
    """The modules ``import package`` loads, in a fresh interpreter."""
    listing = f"import sys, {package}; print(*sys.modules, sep=chr(10))"
    result = subprocess.run(
        [sys.executable, "-c", listing], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"import {package} failed:\n{result.stderr}"
    return frozenset(result.stdout.split())


def _reachable(edges: dict[str, set[str]], start: str) -> set[str]:
    """The modules ``start`` reaches through one import or more."""
    seen: set[str] = set()
    pending = list(edges[start])
    while pending:
        node = pending.pop()
        if node not in seen:
            seen.add(node)
            pending.extend(edges[node])
    return seen


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The groups of modules that reach each other (strongly connected components), sorted."""
    reach = {node: _reachable(edges, node) for node in edges}
    groups = {
        frozenset({node} | {other for other in reach[node] if node in reach[other]})
        for node in edges
        if node in reach[node]
    }
    return sorted(sorted(group) for group in groups)


def violations(member: Member) -> dict[str, str]:
    """``{violation: where it is}`` for one member: its cycles and needless function imports."""
    workspace = _workspace()
    package = "aegis." + member.name.removeprefix("aegis-")
    own = [name for name in workspace.modules if name == package or name.startswith(package + ".")]
    found: dict[str, str] = {}
    edges: dict[str, set[str]] = {name: set() for name in own}
    lines: dict[tuple[str, str], list[str]] = {}
    required = _required(canonicalize_name(member.name))
    for name in own:
        for imported in workspace.imports[name]:
            if imported.target in edges:
                edges[name].add(imported.target)
                kind = "in a function" if imported.in_function else "at the top"
                place = f"{imported.line} ({kind})"
                found_lines = lines.setdefault((name, imported.target), [])
                if place not in found_lines:
                    found_lines.append(place)
            if not imported.in_function or _is_optional(imported.target, required):
                continue
            where = f"{workspace.modules[name].relative_to(ROOT)}:{imported.line}"
            if not imported.lazy:
                found[f"{name} imports {imported.target} inside a function"] = where
            elif imported.target in _loaded_by(package):
                text = f"{name} defers {imported.target} (# lazy:), but import {package} loads it"
                found[text] = where
    for component in _cycles(edges):
        members = set(component)
        steps = [
            f"{a} -> {b} (line {', '.join(lines[a, b])})"
            for a in component
            for b in sorted(edges[a] & members)
        ]
        found[f"import cycle among {', '.join(component)}"] = "; ".join(steps)
    return found


_WITH_SOURCES = [m for m in MEMBERS.values() if (m.path / "src").is_dir()]


@pytest.mark.parametrize("package", _WITH_SOURCES, ids=[m.name for m in _WITH_SOURCES])
def test_member_has_no_import_cycle_and_no_needless_import_in_a_function(package: Member) -> None:
    found = violations(package)
    assert not found, "\n".join(f"{text}: {where}" for text, where in sorted(found.items()))


def test_a_cycle_and_a_needless_import_in_a_function_are_found(tmp_path: Path) -> None:
    """The checks themselves: a cycle hidden in a function and a type-only import."""
    package = tmp_path / "aegis" / "demo"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "_a.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "from aegis.demo._b import B\n"
        "if TYPE_CHECKING:\n"
        "    from aegis.demo._c import C\n"
    )
    (package / "_b.py").write_text("def f():\n    from aegis.demo import _a\n    import json\n")
    (package / "_c.py").write_text("from aegis.demo._a import A\n")
    modules = _modules(tmp_path)
    imports = {name: _imports(name, path, set(modules)) for name, path in modules.items()}
    edges = {name: {i.target for i in imports[name] if i.target in modules} for name in modules}
    assert _cycles(edges) == [["aegis.demo._a", "aegis.demo._b"]]
    in_functions = sorted(i.target for found in imports.values() for i in found if i.in_function)
    assert in_functions == ["aegis.demo._a", "json"]
    assert not _distribution_is_optional("json", frozenset())
    assert _distribution_is_optional("aegis.demo", frozenset({"aegis-core"}))


def test_an_import_deferred_for_import_time_is_marked_and_not_loaded_anyway(tmp_path: Path) -> None:
    """The ``# lazy:`` marker, on the import or alone above it, and what a package loads."""
    package = tmp_path / "aegis" / "demo"
    package.mkdir(parents=True)
    (package / "_d.py").write_text(
        "def f():\n"
        "    import csv  # lazy: rarely used\n"
        "    # lazy: rarely used\n"
        "    from email import (\n"
        "        message,\n"
        "    )\n"
        "    import json  # not lazy: the marker must start the comment\n"
        "    import zlib  # lazy: rarely used\n"
        "    import gzip\n"
    )
    modules = _modules(tmp_path)
    found = _imports("aegis.demo._d", modules["aegis.demo._d"], set(modules))
    assert {i.target: i.lazy for i in found} == {
        "csv": True,
        "email": True,
        "json": False,
        "zlib": True,
        "gzip": False,
    }
    loaded = _loaded_by("json")
    assert "json.decoder" in loaded
    assert "csv" not in loaded

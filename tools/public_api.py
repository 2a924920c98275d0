"""The public names of an aegis member, read statically from its source on disk or at a git ref.

Usage: python tools/public_api.py packages/aegis-db [--against aegis-db-v0.1.0]

A public name is a module whose dotted path has no part starting with an underscore, and every
name in such a module's ``__all__`` (``aegis.db``, ``aegis.db.DatabaseManager``). Nothing is
imported, so a ref whose code no longer runs here can still be compared. Standard library only:
./dev release runs this without the development environment.
"""

from __future__ import annotations

import argparse
import ast
import subprocess
from pathlib import Path


def declared_all(source: str, filename: str = "<source>") -> list[str] | None:
    """Return the literal ``__all__`` of a module's source, or None when it declares none.

    Raises:
        ValueError: ``__all__`` is assigned something other than a list or tuple of strings.
    """
    names: list[str] | None = None
    for node in ast.parse(source, filename).body:
        if isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if not any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
                continue
            try:
                value = ast.literal_eval(node.value) if node.value is not None else None
            except ValueError:
                value = None
            if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
                raise ValueError(f"{filename}: __all__ must be a literal list of strings")
            names = [*(names or []), *value] if isinstance(node, ast.AugAssign) else list(value)
    return names


def public_names(sources: dict[str, str]) -> set[str]:
    """Public names from ``{path relative to src/: source}`` (``aegis/db/__init__.py``)."""
    found: set[str] = set()
    for path, source in sources.items():
        parts = path.removesuffix(".py").split("/")
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if any(part.startswith("_") for part in parts):
            continue
        module = ".".join(parts)
        found.add(module)
        found.update(f"{module}.{name}" for name in declared_all(source, path) or [])
    return found


def sources_on_disk(member: Path) -> dict[str, str]:
    """The member's Python sources under ``src/``, as they are in the working tree."""
    src = member / "src"
    return {p.relative_to(src).as_posix(): p.read_text() for p in sorted(src.rglob("*.py"))}


def sources_at(ref: str, member: Path, repo: Path) -> dict[str, str]:
    """The member's Python sources under ``src/`` at a git ``ref`` of ``repo``."""
    src = (member / "src").resolve().relative_to(repo.resolve()).as_posix()
    listing = _git(repo, "ls-tree", "-r", "--name-only", ref, "--", src).splitlines()
    return {
        path.removeprefix(src + "/"): _git(repo, "show", f"{ref}:{path}")
        for path in listing
        if path.endswith(".py")
    }


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, capture_output=True, text=True, check=True
    ).stdout


def main() -> int:
    """Print the member's public names, or what changed against a ref."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("member", type=Path)
    parser.add_argument("--against", metavar="REF")
    args = parser.parse_args()
    current = public_names(sources_on_disk(args.member))
    if args.against is None:
        print("\n".join(sorted(current)))
        return 0
    repo = Path(_git(args.member, "rev-parse", "--show-toplevel").strip())
    before = public_names(sources_at(args.against, args.member, repo))
    for name in sorted(before - current):
        print(f"- {name}")
    for name in sorted(current - before):
        print(f"+ {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

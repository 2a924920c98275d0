"""MkDocs hooks for the aegis site: a page and a changelog page per member, and the error codes.

A member added under packages/ gets its pages with no edit here or in mkdocs.yml: its page is its
README (pulled in by pymdownx.snippets, so the docs never copy it) followed by the API reference
of its public modules (mkdocstrings), and its changelog page is its CHANGELOG.md.

Two more things are generated at build time rather than kept in docs/: the sample schema
registry's pages (aegis-schema's ``write_docs`` over examples/schemas, Mermaid ERD and service
graph included), and the benchmark charts (benchmarks/charts/*.png, which the Performance page
shows through benchmarks/RESULTS.md), so neither is ever a stale copy. Mermaid, which draws the
registry's diagrams, is aegis-schema's vendored copy, added to the site so that no page loads
anything from another host.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page
from mkdocs.utils import get_relative_url

sys.path.insert(0, str(Path(__file__).resolve().parent))
from members import Member, load_members
from vendor import load_bundles

ROOT = Path(__file__).resolve().parent.parent
ERROR_CODES_MARKER = "<!-- aegis:error-codes -->"
# A row of operations.md's problem codes table: | `CODE` | STATUS | [Section](#anchor) |
_OPERATIONS_ROW = re.compile(
    r"^\| `(?P<code>[A-Z_]+)` \| \d{3} \| \[[^]]+\]\(#(?P<anchor>[a-z0-9-]+)\) \|$", re.M
)
GENERATED_SECTIONS = {"Packages": "packages", "Changelogs": "changelog"}
SAMPLE_REGISTRY = ROOT / "examples" / "schemas"
SAMPLE_REGISTRY_SECTION, SAMPLE_REGISTRY_FOLDER = "Sample schema registry", "schema-registry"
BENCHMARKS = ROOT / "benchmarks"
MERMAID_SCRIPT = "assets/mermaid/mermaid.min.js"  # its licence goes beside it

# Imports aegis.core, then each member, and records which member registered which code.
_COLLECT_CODES = """
import importlib, json, sys
from aegis.core.errors import ERROR_CODES
owners = {code: "aegis-core" for code in ERROR_CODES}
for name in sys.argv[1:]:
    importlib.import_module("aegis." + name.removeprefix("aegis-"))
    owners.update({code: name for code in ERROR_CODES if code not in owners})
print(json.dumps([[c, e.status, e.title, owners[c]] for c, e in sorted(ERROR_CODES.items())]))
"""


def _members() -> list[Member]:
    members = sorted(load_members(ROOT).values(), key=lambda m: m.name)
    # aegis-core first: every other member stands on it.
    return sorted(members, key=lambda m: (m.name != "aegis-core", m.meta, m.name))


def public_modules(member: Member) -> list[str]:
    """The member's modules without an underscore in their dotted path, in path order."""
    src = member.path / "src"
    modules = []
    for path in sorted(src.rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        if not any(part.startswith("_") for part in parts):
            modules.append(".".join(parts))
    return sorted(modules)


def member_page(member: Member) -> str:
    """The Markdown of a member's page: its README, then its API reference."""
    relative = member.path.relative_to(ROOT).as_posix()
    lines = [f'--8<-- "{relative}/README.md"', ""]
    modules = [] if member.meta else public_modules(member)
    if modules:
        lines += ["## API reference", ""]
        for module in modules:
            lines += [f"::: {module}", "    options:", "      heading_level: 3", ""]
    lines.append(f"[Changelog](../changelog/{member.name}.md)")
    return "\n".join(lines) + "\n"


def sample_registry_pages() -> dict[str, str]:
    """``{file name: Markdown}`` of examples/schemas as ``write_docs`` renders it, index first."""
    from aegis.schema import SchemaRegistry, write_docs  # only the docs need it

    with tempfile.TemporaryDirectory() as directory:
        written = write_docs(SchemaRegistry.load(SAMPLE_REGISTRY), directory)
        return {path.name: path.read_text() for path in written}


def error_code_table() -> str:
    """A Markdown table of every registered error code, its status, title and member."""
    names = [m.name for m in _members() if not m.meta and m.name != "aegis-core"]
    names = [n for n in names if (ROOT / "packages" / n / "src").is_dir()]
    result = subprocess.run(
        [sys.executable, "-c", _COLLECT_CODES, *names],
        capture_output=True,
        text=True,
        check=True,
    )
    sections = operations_sections()
    rows = [
        "| code | HTTP status | title | package | operations |",
        "|---|---|---|---|---|",
    ]
    for code, status, title, owner in json.loads(result.stdout):
        if code not in sections:
            raise ValueError(f"docs/operations.md's problem codes table has no row for {code}")
        link = f"[what to do](operations.md#{sections[code]})"
        rows.append(f"| `{code}` | {status} | {title} | [{owner}](packages/{owner}.md) | {link} |")
    return "\n".join(rows)


def operations_sections() -> dict[str, str]:
    """Each problem code's section in docs/operations.md, from that page's problem codes table."""
    rows = _OPERATIONS_ROW.finditer((ROOT / "docs" / "operations.md").read_text())
    return {row["code"]: row["anchor"] for row in rows}


class CodeInProseFilter(logging.Filter):
    """Downgrade autorefs' missing-target warning when the "target" is code, not a name.

    In docstring prose (an ``Example:`` admonition rather than an ``Examples:`` section, whose
    doctest lines griffe renders as code), ``events[0]["card"]`` reads as a Markdown reference
    link. A target with a quote or a space cannot name a Python object: such a record goes out
    as INFO instead of a warning that fails the strict build. A broken reference to a real name
    still fails it.
    """

    _MISSING = re.compile(r"Could not find cross-reference target '(?P<target>.*)'$", re.S)

    def filter(self, record: logging.LogRecord) -> bool:
        """Lower matching records to INFO; never drop a record."""
        match = self._MISSING.search(record.getMessage())
        if record.levelno == logging.WARNING and match and re.search(r"[\"'\s]", match["target"]):
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def _fill_nav(nav: list[Any], sections: dict[str, list[dict[str, str]]]) -> None:
    """Replace the entries of each generated section, at any depth of the nav."""
    for item in nav:
        if isinstance(item, dict):
            for title, children in item.items():
                if title in sections:
                    item[title] = sections[title]
                elif isinstance(children, list):
                    _fill_nav(children, sections)


def on_config(config: MkDocsConfig) -> MkDocsConfig:
    """Fill the nav's Packages and Changelogs sections with one entry per member."""
    for name in list(logging.root.manager.loggerDict):
        if name.startswith("mkdocs.plugins.mkdocs_autorefs"):
            logging.getLogger(name).addFilter(CodeInProseFilter())
    sections = {title: [{m.name: f"{folder}/{m.name}.md"} for m in _members()]
                for title, folder in GENERATED_SECTIONS.items()}  # fmt: skip
    sections[SAMPLE_REGISTRY_SECTION] = [
        {
            "Overview"
            if name == "index.md"
            else name.removesuffix(".md"): f"{SAMPLE_REGISTRY_FOLDER}/{name}"
        }
        for name in sample_registry_pages()
    ]
    _fill_nav(config.nav or [], sections)
    return config


def on_files(files: Files, config: MkDocsConfig) -> Files:
    """Add the generated pages, the benchmark charts and the vendored Mermaid."""
    for member in _members():
        relative = member.path.relative_to(ROOT).as_posix()
        files.append(
            File.generated(config, f"packages/{member.name}.md", content=member_page(member))
        )
        files.append(
            File.generated(
                config, f"changelog/{member.name}.md", content=f'--8<-- "{relative}/CHANGELOG.md"\n'
            )
        )
    for name, content in sample_registry_pages().items():
        files.append(File.generated(config, f"{SAMPLE_REGISTRY_FOLDER}/{name}", content=content))
    # RESULTS.md links its charts as charts/NAME.png: the same path beside the Performance page.
    for chart in sorted((BENCHMARKS / "charts").glob("*.png")):
        files.append(
            File(
                f"charts/{chart.name}",
                src_dir=str(BENCHMARKS),
                dest_dir=config.site_dir,
                use_directory_urls=config.use_directory_urls,
            )
        )
    # aegis-schema's vendored Mermaid (tools/vendored.toml), so no page loads it from a CDN.
    (mermaid,) = [bundle for bundle in load_bundles() if bundle.npm == "mermaid"]
    for name in ("mermaid.min.js", "LICENSE"):
        files.append(
            File.generated(
                config,
                str(PurePosixPath(MERMAID_SCRIPT).with_name(name)),
                abs_src_path=str(mermaid.folder / name),
            )
        )
    return files


def on_post_page(output: str, page: Page, config: MkDocsConfig) -> str:
    """Load the vendored Mermaid on the pages that have a diagram, before mkdocs-material runs.

    With a ``mermaid`` global defined, mkdocs-material draws the diagrams with it instead of
    fetching Mermaid from unpkg.com; loading it only where a diagram is spares every other page
    its 5 MB.
    """
    del config  # the hook's signature is fixed by MkDocs
    if '<pre class="mermaid">' not in output:
        return output
    script = get_relative_url(MERMAID_SCRIPT, page.url)
    return output.replace("</head>", f'<script src="{script}"></script>\n</head>', 1)


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    """Put the generated error-code table where a page asks for it."""
    del page, config, files  # the hook's signature is fixed by MkDocs
    if ERROR_CODES_MARKER in markdown:
        return markdown.replace(ERROR_CODES_MARKER, error_code_table())
    return markdown

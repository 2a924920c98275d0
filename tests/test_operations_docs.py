"""docs/operations.md and docs/alerts.yaml against the code: every metric, label and problem code.

The metrics are read from the members' sources (each call that declares a Prometheus metric or
metric family under an ``aegis_`` name, with its labels), so a metric added anywhere fails here
until operations.md lists it; a second test checks that reading against the metric sets the
members register at run time. The alert rules go through ``promtool check rules`` (Debian's
``prometheus`` package; ``./dev test`` installs it) and may name only metrics that exist.
"""

from __future__ import annotations

import ast
import importlib
import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml
from prometheus_client import CollectorRegistry
from sqlalchemy import create_engine

ROOT = Path(__file__).resolve().parent.parent
OPERATIONS = ROOT / "docs" / "operations.md"
ALERTS = ROOT / "docs" / "alerts.yaml"
COUNTERS = {"Counter", "PlainCounter", "CounterMetricFamily", "counter"}
DECLARATIONS = COUNTERS | {
    "Gauge",
    "Histogram",
    "Summary",
    "Info",
    "Enum",
    "PlainHistogram",
    "GaugeMetricFamily",
    "HistogramMetricFamily",
    "SummaryMetricFamily",
    "gauge",
    "histogram",
    "summary",
}
HISTOGRAM_SERIES = ("_bucket", "_sum", "_count", "_created")
_ROW = re.compile(r"^\| `(?P<name>aegis_[a-z0-9_]+)` \| (?P<kind>\w+) \|(?P<labels>[^|]*)\|", re.M)
_CODE_ROW = re.compile(
    r"^\| `(?P<code>[A-Z_]+)` \| (?P<status>\d{3}) \| \[[^]]+\]\(#(?P<anchor>[a-z0-9-]+)\) \|$",
    re.M,
)


@dataclass(frozen=True)
class Declared:
    """A metric declared in a member's source."""

    name: str
    labels: tuple[str, ...] | None  # None: not written as literals
    where: str


def _strings(node: ast.expr, constants: dict[str, object]) -> tuple[str, ...] | None:
    """The label names an expression spells: literals, module constants, ``*CONSTANT``."""
    if isinstance(node, ast.Name):
        value = constants.get(node.id)
        return value if isinstance(value, tuple) else None
    if not isinstance(node, ast.List | ast.Tuple):
        return None
    found: list[str] = []
    for element in node.elts:
        if isinstance(element, ast.Constant) and isinstance(element.value, str):
            found.append(element.value)
        elif isinstance(element, ast.Starred):
            inner = _strings(element.value, constants)
            if inner is None:
                return None
            found.extend(inner)
        else:
            return None
    return tuple(found)


def _constants(tree: ast.Module) -> dict[str, object]:
    constants: dict[str, object] = {}
    for statement in tree.body:
        target = value = None
        if isinstance(statement, ast.Assign) and len(statement.targets) == 1:
            target, value = statement.targets[0], statement.value
        elif isinstance(statement, ast.AnnAssign) and statement.value is not None:
            target, value = statement.target, statement.value
        if not isinstance(target, ast.Name) or value is None:
            continue
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            constants[target.id] = value.value
        elif isinstance(value, ast.List | ast.Tuple):
            labels = _strings(value, constants)
            if labels is not None:
                constants[target.id] = labels
    return constants


def declared_metrics() -> dict[str, Declared]:
    """Every metric the members' sources declare under an ``aegis_`` name, as exported."""
    found: dict[str, Declared] = {}
    for source in sorted(ROOT.glob("packages/*/src/aegis/**/*.py")):
        tree = ast.parse(source.read_text())
        constants = _constants(tree)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            function = node.func
            kind = getattr(function, "id", None) or getattr(function, "attr", None)
            if kind not in DECLARATIONS:
                continue
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                name = first.value
            elif isinstance(first, ast.Name) and isinstance(constants.get(first.id), str):
                name = str(constants[first.id])
            else:
                continue
            keywords = {k.arg: k.value for k in node.keywords if k.arg}
            prefix = [
                str(keywords[part].value)  # type: ignore[attr-defined]
                for part in ("namespace", "subsystem")
                if isinstance(keywords.get(part), ast.Constant)
            ]
            name = "_".join([*prefix, name])
            if not name.startswith("aegis_"):
                continue
            if kind in COUNTERS and not name.endswith("_total"):
                name += "_total"
            label_node = keywords.get("labels") or keywords.get("labelnames")
            if label_node is None and len(node.args) > 2:
                label_node = node.args[2]
            labels = () if label_node is None else _strings(label_node, constants)
            where = f"{source.relative_to(ROOT)}:{node.lineno}"
            known = found.get(name)
            assert known is None or known.labels == labels or None in (known.labels, labels), (
                f"{name} declared with labels {known.labels} ({known.where}) and {labels} ({where})"
            )
            if known is None or known.labels is None:
                found[name] = Declared(name, labels, where)
    return found


def documented_metrics() -> dict[str, tuple[str, set[str]]]:
    """The metrics reference of operations.md: name -> (type, labels)."""
    rows = {}
    for row in _ROW.finditer(OPERATIONS.read_text()):
        labels = {label.strip(" `") for label in row["labels"].split(",") if label.strip()}
        rows[row["name"]] = (row["kind"], labels)
    return rows


def _anchors(markdown: str) -> set[str]:
    """The ids of the page's headings, as the toc extension makes them."""
    anchors = set()
    for heading in re.findall(r"^#{1,6} (.+)$", markdown, re.M):
        slug = re.sub(r"[^\w\s-]", "", heading.lower()).strip()
        anchors.add(re.sub(r"[-\s]+", "-", slug))
    return anchors


def test_every_declared_metric_is_documented_with_its_labels() -> None:
    declared = declared_metrics()
    documented = documented_metrics()
    missing = sorted(set(declared) - set(documented))
    assert not missing, f"docs/operations.md's metrics reference lacks {missing}"
    for name, metric in declared.items():
        assert metric.labels is not None, f"{metric.where}: labels of {name} not readable"
        assert documented[name][1] == set(metric.labels), (
            f"{name}: operations.md lists labels {sorted(documented[name][1])}, "
            f"{metric.where} declares {list(metric.labels)}"
        )
    stale = sorted(set(documented) - set(declared))
    assert not stale, f"docs/operations.md lists metrics no member declares: {stale}"


def _registered_families() -> dict[str, str]:
    """name -> type of every family the members' metric sets put in a registry."""
    auth = importlib.import_module("aegis.auth._metrics")
    cache = importlib.import_module("aegis.cache._metrics")
    db = importlib.import_module("aegis.db._metrics")
    msg = importlib.import_module("aegis.msg._metrics")
    http = importlib.import_module("aegis.obs._http_metrics")
    obs = importlib.import_module("aegis.obs")
    registry = CollectorRegistry()
    obs.instrument_engine(create_engine("sqlite://"), registry=registry)
    auth.AuthMetrics(registry)
    cache.metrics_for(registry)
    db.replica_metrics(registry)
    msg.MsgMetrics(registry)
    http.http_metrics(registry, (0.1, 1.0), (100.0,)).route("GET", "/").finish(False, 0.01, 10, 200)
    families = {}
    for family in registry.collect():
        name = family.name + ("_total" if family.type == "counter" else "")
        families[name] = family.type
    return families


def test_the_source_reading_finds_every_metric_the_members_register() -> None:
    registered = _registered_families()
    assert len(registered) > 30
    assert set(registered) <= set(declared_metrics()), set(registered) - set(declared_metrics())
    documented = documented_metrics()
    for name, kind in registered.items():
        assert documented[name][0] == kind, f"{name} is a {kind}, operations.md says otherwise"


# Every module of every member imported in a fresh interpreter: the registry is process-wide,
# so in the test process it would also hold what other tests imported (a sample service's codes).
_MEMBER_CODES = """
import json, pkgutil, sys, importlib
from aegis.core.errors import ERROR_CODES
for member in sys.argv[1:]:
    package = importlib.import_module(f"aegis.{member}")
    for module in pkgutil.walk_packages(package.__path__, f"aegis.{member}."):
        if not module.name.endswith("__main__"):
            importlib.import_module(module.name)
print(json.dumps({code: info.status for code, info in ERROR_CODES.items()}))
"""


def test_every_registered_problem_code_links_to_an_operations_section() -> None:
    members = sorted(p.parent.name.removeprefix("aegis-") for p in ROOT.glob("packages/*/src"))
    found = subprocess.run(
        [sys.executable, "-c", _MEMBER_CODES, *members],
        capture_output=True,
        text=True,
        check=True,
    )
    codes: dict[str, int] = json.loads(found.stdout)
    markdown = OPERATIONS.read_text()
    rows = {row["code"]: row for row in _CODE_ROW.finditer(markdown)}
    assert sorted(rows) == sorted(codes), (
        f"operations.md's problem codes differ: missing {sorted(set(codes) - set(rows))}, "
        f"unknown {sorted(set(rows) - set(codes))}"
    )
    anchors = _anchors(markdown)
    for code, row in rows.items():
        assert int(row["status"]) == codes[code], code
        assert row["anchor"] in anchors, f"{code} links to #{row['anchor']}, no such section"


def test_alert_rules_pass_promtool() -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: ./dev test installs Debian's prometheus package"
    result = subprocess.run(
        [promtool, "check", "rules", str(ALERTS)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_alerts_name_only_exported_metrics_and_link_to_their_section() -> None:
    declared = declared_metrics()
    anchors = _anchors(OPERATIONS.read_text())
    rules = [r for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]]
    assert rules
    alerted = set()
    for rule in rules:
        for name in re.findall(r"\baegis_[a-z0-9_]+", rule["expr"]):
            base = name
            if name not in declared:
                base = next(
                    (name.removesuffix(s) for s in HISTOGRAM_SERIES if name.endswith(s)), name
                )
            assert base in declared, (
                f"alert {rule['alert']} uses {name}, which aegis does not export"
            )
            alerted.add(base)
        page, _, anchor = rule["annotations"]["runbook"].partition("#")
        assert page == "operations.md"
        assert anchor in anchors, f"alert {rule['alert']}: no section #{anchor}"
    assert len(alerted) > 20

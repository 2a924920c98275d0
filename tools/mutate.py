"""Mutation testing of workspace modules: ``./dev mutate PATH... [--sample N]``.

cosmic-ray makes the mutants (its operators, and where each one applies); this tool runs them.
Each mutant is written into a copy of its member in a temporary directory (the working tree,
which other runs may be reading, is never changed) and the tests that cover the module run
against it, niced, with a time limit per mutant. A test run is a fork of this process after it
has imported pytest and the third-party libraries those tests use: a fresh interpreter per
mutant would spend most of its time importing them again.

Which tests cover a module, and the mutants judged equivalent by hand (no test can tell them
from the original), are read from tools/mutation.toml::

    [tests]
    "packages/aegis-msg/src/aegis/msg/_retry.py" = ["packages/aegis-msg/tests/test_retry.py"]

    [[equivalent]]
    file = "packages/aegis-msg/src/aegis/msg/_retry.py"
    line = 72
    operator = "core/ReplaceComparisonOperator_Lt_LtE"
    source = "if self.attempts < 1:"   # optional: the record goes stale when the line changes
    reason = "attempts is an int: < 1 and <= 0 are the same test"

A module without a ``[tests]`` entry runs its member's ``tests/``. Mutants inside annotations
are left out (with ``from __future__ import annotations`` they are never evaluated). The report
prints each surviving mutant as a diff and ends with ``mutation score: N% (killed K of M)``.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import difflib
import hashlib
import importlib
import json
import os
import select
import shutil
import signal
import sys
import sysconfig
import tempfile
import threading
import time
import tomllib
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cosmic_ray.ast import ast_nodes, get_ast  # type: ignore[import-untyped]
from cosmic_ray.mutating import mutate_code  # type: ignore[import-untyped]
from cosmic_ray.plugins import get_operator, operator_names  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parent.parent
ROOT_FILES = ("pyproject.toml", "conftest.py")  # pytest's settings and the root conftest
NICENESS = 10
TIMED_OUT = -1


@dataclass(frozen=True)
class Mutant:
    """One mutation: a cosmic-ray operator applied at its ``occurrence``-th place."""

    operator: str
    occurrence: int
    line: int
    col: int


@dataclass(frozen=True)
class Equivalent:
    """A mutant judged equivalent by hand: same behaviour as the original."""

    file: str
    line: int
    operator: str
    reason: str
    source: str | None = None


@dataclass
class Report:
    """What happened to the mutants of one module."""

    path: str
    generated: int = 0
    in_annotations: int = 0
    equivalent: int = 0
    outside_sample: int = 0
    killed: int = 0
    timed_out: int = 0
    survivors: list[tuple[Mutant, str]] = field(default_factory=list)

    @property
    def tested(self) -> int:
        """Mutants that ran against the tests."""
        return self.killed + len(self.survivors)


def score_line(killed: int, tested: int) -> str:
    """``mutation score: N% (killed K of M)``; 100% when no mutant was tested."""
    percent = 100.0 * killed / tested if tested else 100.0
    return f"mutation score: {percent:.1f}% (killed {killed} of {tested})"


def find_mutants(source: str) -> list[Mutant]:
    """Every mutant cosmic-ray's argument-less operators make of ``source``, in its order."""
    tree = get_ast(source)
    found = []
    for name in operator_names():
        operator_class = get_operator(name)
        if operator_class.arguments():  # VariableReplacer/-Inserter: need a configuration
            continue
        operator = operator_class()
        positions = (
            start for node in ast_nodes(tree) for start, _ in operator.mutation_positions(node)
        )
        for occurrence, (line, col) in enumerate(positions):
            found.append(Mutant(name, occurrence, line, col))
    return found


def mutated_source(source: str, mutant: Mutant) -> str | None:
    """``source`` with ``mutant`` applied, or None when cosmic-ray finds nothing to change."""
    result: str | None = mutate_code(source, get_operator(mutant.operator)(), mutant.occurrence)
    return result


def annotation_spans(source: str) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """(line, column) ranges of every annotation, columns in characters as cosmic-ray counts."""
    lines = source.splitlines()

    def column(line: int, offset: int) -> int:  # ast counts UTF-8 bytes
        return len(lines[line - 1].encode()[:offset].decode(errors="ignore"))

    spans = []
    for node in ast.walk(ast.parse(source)):
        annotation: ast.expr | None = None
        if isinstance(node, ast.arg | ast.AnnAssign):
            annotation = node.annotation
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            annotation = node.returns
        if annotation is not None and annotation.end_lineno is not None:
            end_col = annotation.end_col_offset or 0
            spans.append(
                (
                    (annotation.lineno, column(annotation.lineno, annotation.col_offset)),
                    (annotation.end_lineno, column(annotation.end_lineno, end_col)),
                )
            )
    return spans


def load_config(path: Path | None) -> tuple[dict[str, list[str]], list[Equivalent]]:
    """The ``[tests]`` map and the ``[[equivalent]]`` records of a mutation.toml."""
    if path is None or not path.is_file():
        return {}, []
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    tests = {str(name): [str(t) for t in paths] for name, paths in data.get("tests", {}).items()}
    equivalents = [Equivalent(**record) for record in data.get("equivalent", [])]
    return tests, equivalents


def unit_of(path: Path, root: Path) -> Path:
    """The member folder (nearest with a pyproject.toml below ``root``) holding ``path``."""
    for parent in [path, *path.parents]:
        if parent == root or root not in parent.parents:
            break
        if (parent / "pyproject.toml").is_file():
            return parent
    return path


def make_workspace(root: Path, paths: list[Path], workspace: Path) -> list[Path]:
    """Copy the members holding ``paths`` (and pytest's root files); return their ``src`` dirs."""
    for name in ROOT_FILES:
        if (root / name).is_file():
            shutil.copy2(root / name, workspace / name)
    sources = []
    ignore = shutil.ignore_patterns("__pycache__", ".hypothesis", ".pytest_cache", "*.pyc")
    for unit in sorted({unit_of(path, root) for path in paths}):
        target = workspace / unit.relative_to(root)
        if target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if unit.is_dir():
            shutil.copytree(unit, target, ignore=ignore, symlinks=True)
            if (target / "src").is_dir():
                sources.append(target / "src")
        else:
            shutil.copy2(unit, target)
    return sources


def run_tests(
    workspace: Path, tests: list[str], timeout: float, log: Path, modules: Path | None = None
) -> int:
    """Run pytest over ``tests`` in a fork: its exit code, or TIMED_OUT (the fork is killed then).

    The fork leads a session of its own, so whatever the tests started dies with it. With
    ``modules``, the fork writes there which modules the run imported, from which files.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the test run
        code = 70
        try:
            os.setsid()
            out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(out, 1)
            os.dup2(out, 2)
            os.chdir(workspace)
            code = int(
                pytest.main(
                    [
                        *("-x", "-q", "-p", "no:cacheprovider", "--rootdir", str(workspace)),
                        # plugins the parent imported before pytest could mark them for rewriting
                        *("-W", "ignore::pytest.PytestAssertRewriteWarning"),
                        *tests,
                    ]
                )
            )
            if modules is not None:
                imported = {
                    name: getattr(module, "__file__", None)
                    for name, module in list(sys.modules.items())
                }
                modules.write_text(json.dumps(imported))
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    pidfd = os.pidfd_open(pid)
    try:
        finished, _, _ = select.select([pidfd], [], [], timeout)
        # The fork is a zombie or still running: its pid, and so its group id, cannot be reused
        # yet, so this kills only what the test run started.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(pidfd)
    return os.waitstatus_to_exitcode(status) if finished else TIMED_OUT


def preload(modules_file: Path) -> tuple[int, int]:
    """Import the third-party and standard modules a baseline run used: (done, failed).

    Only modules from site-packages and the standard library: the workspace's own code (and
    the editable members) must be imported afresh by each fork, mutated or not.
    """
    imported = json.loads(modules_file.read_text())
    places = {sysconfig.get_paths()[key] for key in ("purelib", "platlib", "stdlib", "platstdlib")}
    count = 0
    failed = []
    for name, file in imported.items():
        if not file or name in sys.modules or name in {"__main__", "__mp_main__"}:
            continue
        if not any(file.startswith(place + os.sep) for place in places):
            continue
        try:
            importlib.import_module(name)
        except Exception:  # one that imports only in its package's context: each fork does
            failed.append(name)
        else:
            count += 1
    return count, len(failed)


def is_equivalent(
    mutant: Mutant, relative: str, lines: list[str], records: list[Equivalent]
) -> bool:
    """Whether a record in mutation.toml covers ``mutant`` (file, line and operator)."""
    for record in records:
        if (record.file, record.line, record.operator) != (relative, mutant.line, mutant.operator):
            continue
        if record.source is None or record.source.strip() == lines[mutant.line - 1].strip():
            return True
    return False


def stale_records(relative: str, lines: list[str], records: list[Equivalent]) -> Iterator[str]:
    """Records for this file whose ``source`` no longer matches their line."""
    for record in records:
        if record.file != relative or record.source is None:
            continue
        current = lines[record.line - 1].strip() if record.line <= len(lines) else ""
        if record.source.strip() != current:
            yield f"{record.file}:{record.line} {record.operator}: line is now {current!r}"


def select_mutants(
    report: Report, source: str, records: list[Equivalent], sample: int | None
) -> list[Mutant]:
    """The mutants to test: not in annotations, not recorded equivalent, in the sample."""
    lines = source.splitlines()
    spans = annotation_spans(source)
    chosen = []
    for mutant in find_mutants(source):
        report.generated += 1
        where = (mutant.line, mutant.col)
        if any(start <= where < end for start, end in spans):
            report.in_annotations += 1
        elif is_equivalent(mutant, report.path, lines, records):
            report.equivalent += 1
        else:
            chosen.append(mutant)
    if sample is not None and len(chosen) > sample:
        # A fixed sample per module, so two runs of the same code test the same mutants.
        def rank(mutant: Mutant) -> bytes:
            name = f"{report.path}:{mutant.operator}:{mutant.occurrence}"
            return hashlib.blake2b(name.encode()).digest()

        picked = set(sorted(chosen, key=rank)[:sample])
        report.outside_sample = len(chosen) - sample
        chosen = [mutant for mutant in chosen if mutant in picked]
    return chosen


def mutate_module(
    report: Report, workspace: Path, mutants: list[Mutant], tests: list[str], timeout: float
) -> None:
    """Test each mutant of the module's copy in ``workspace``, restoring the file after each."""
    target = workspace / report.path
    log = workspace / "mutant.log"
    original = target.read_text(encoding="utf-8")
    for index, mutant in enumerate(mutants, 1):
        code = mutated_source(original, mutant)
        if code is None:
            continue
        try:
            target.write_text(code, encoding="utf-8")
            exit_code = run_tests(workspace, tests, timeout, log)
        finally:
            target.write_text(original, encoding="utf-8")
        mark = "."
        if exit_code == 0:
            diff = difflib.unified_diff(
                original.splitlines(),
                code.splitlines(),
                f"a/{report.path}",
                f"b/{report.path}",
                n=1,
                lineterm="",
            )
            report.survivors.append((mutant, "\n".join(diff)))
            mark = "S"
        else:
            report.killed += 1
            if exit_code == TIMED_OUT:
                report.timed_out += 1
                mark = "T"
        print(mark, end="\n" if index % 60 == 0 else "", file=sys.stderr, flush=True)
    print(file=sys.stderr)


def print_report(reports: list[Report], floor: float) -> list[str]:
    """Print the survivors as diffs and the scores; return the modules under ``floor``."""
    for report in reports:
        for mutant, diff in report.survivors:
            print(f"\nsurvived: {report.path}:{mutant.line}:{mutant.col} {mutant.operator}")
            print(diff)
    print()
    under = []
    for report in reports:
        timeouts = f", {report.timed_out} by timeout" if report.timed_out else ""
        print(f"{report.path}: {score_line(report.killed, report.tested)}{timeouts}")
        if report.tested and 100.0 * report.killed / report.tested < floor:
            under.append(report.path)
    if under:
        print(f"under the floor of {floor:g}%: {', '.join(under)}")
    killed = sum(report.killed for report in reports)
    tested = sum(report.tested for report in reports)
    print(score_line(killed, tested))
    return under


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, list[tuple[str, list[str]]]]:
    """The options, and each module (relative to the root) with the tests that cover it."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("paths", nargs="+", type=Path, help="modules to mutate")
    parser.add_argument("--sample", type=int, help="test a fixed sample of N mutants per module")
    parser.add_argument("--tests", nargs="+", help="test paths (instead of mutation.toml's)")
    parser.add_argument("--timeout", type=float, help="seconds per mutant (default: from baseline)")
    parser.add_argument("--fail-under", type=float, default=0.0, help="percent, per module")
    parser.add_argument("--root", type=Path, default=ROOT, help="the repository root")
    parser.add_argument("--config", type=Path, help="default: ROOT/tools/mutation.toml")
    args = parser.parse_args(argv)
    args.root = args.root.resolve()
    args.test_map, args.records = load_config(args.config or args.root / "tools" / "mutation.toml")
    modules = []
    for path in args.paths:
        absolute = path.resolve()
        if not absolute.is_file() or args.root not in absolute.parents:
            parser.error(f"{path}: not a file under {args.root}")
        relative = absolute.relative_to(args.root).as_posix()
        tests = args.tests or args.test_map.get(relative)
        if tests is None:
            tests = [(unit_of(absolute, args.root) / "tests").relative_to(args.root).as_posix()]
        modules.append((relative, tests))
    return args, modules


def main(argv: list[str] | None = None) -> int:
    """Run the mutation test; 1 when a module scores under --fail-under, 2 when tests fail."""
    args, modules = parse_args(argv)
    root, records = args.root, args.records
    os.nice(NICENESS)
    # A mutant written within the second of the one before must not be read from its .pyc.
    sys.dont_write_bytecode = True

    with tempfile.TemporaryDirectory(prefix="aegis-mutate-") as temp:
        workspace = Path(temp)
        copied = [root / relative for relative, _ in modules]
        copied += [root / test for _, tests in modules for test in tests]
        sources = make_workspace(root, copied, workspace)
        # Forks import the workspace copies, and so do the processes the tests start.
        sys.path[:0] = [str(source) for source in sources]
        os.environ["PYTHONPATH"] = os.pathsep.join(
            [*map(str, sources), *filter(None, [os.environ.get("PYTHONPATH")])]
        )
        baselines = {}
        for relative, tests in modules:
            log = workspace / "baseline.log"
            started = time.monotonic()
            code = run_tests(workspace, tests, 900.0, log, workspace / "modules.json")
            baselines[relative] = time.monotonic() - started
            if code != 0:
                print(log.read_text(errors="replace")[-4000:], file=sys.stderr)
                print(f"mutate: the tests of {relative} fail unmutated ({' '.join(tests)})")
                return 2
            preloaded, failed = preload(workspace / "modules.json")
            print(
                f"mutate: {relative}: tests pass unmutated in {baselines[relative]:.1f} s "
                f"({' '.join(tests)}); {preloaded} modules preloaded ({failed} left to each run)",
                file=sys.stderr,
            )
        if threading.active_count() > 1:
            print("mutate: warning: preloading started threads; forks copy none of them")

        reports = []
        for relative, tests in modules:
            report = Report(relative)
            source = (workspace / relative).read_text(encoding="utf-8")
            for stale in stale_records(relative, source.splitlines(), records):
                print(f"mutate: stale equivalent record (ignored): {stale}")
            mutants = select_mutants(report, source, records, args.sample)
            timeout = args.timeout or max(10.0, 5 * baselines[relative])
            print(
                f"mutate: {relative}: {report.generated} mutants, {report.in_annotations} in "
                f"annotations, {report.equivalent} recorded equivalent, "
                f"{report.outside_sample} outside the sample; testing {len(mutants)} "
                f"(timeout {timeout:.0f} s each)",
                file=sys.stderr,
            )
            mutate_module(report, workspace, mutants, tests, timeout)
            reports.append(report)

    return 1 if print_report(reports, args.fail_under) else 0


if __name__ == "__main__":
    raise SystemExit(main())

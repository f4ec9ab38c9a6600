"""Structure checks: no import cycles between the package's modules (function-level and type-only
imports included, since they only hide a cycle), no source file over 600 lines, no function over
80 lines, no two source files with one name, and every registry is the single place its names live."""

from __future__ import annotations

import ast
from pathlib import Path

import anchored_learning

SRC = Path(anchored_learning.__file__).parent


def _module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def import_graph() -> dict[str, set[str]]:
    """module -> the package modules it imports anywhere in its body (``import a.b``, ``from a import b``,
    ``from . import x``), resolved to modules that exist; a package's ``__init__`` counts as the package.
    Imports under ``if TYPE_CHECKING:`` count too: a type-only import is a dependency all the same."""
    files = {_module_name(p): p for p in SRC.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in files}
    for mod, path in files.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
                targets = [f"{base}.{a.name}" for a in node.names] + [base]
            for t in targets:
                while t and t not in files:
                    t = t.rpartition(".")[0]
                if t and t != mod and t.startswith("anchored_learning"):
                    graph[mod].add(t)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a list of nodes (first == last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph[n]):
            if state.get(m) == 1:
                return stack[stack.index(m) :] + [m]
            if m not in state and (c := visit(m)):
                return c
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state and (c := visit(n)):
            return c
    return None


def test_cycle_finder_on_known_graphs():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_no_import_cycles():
    graph = import_graph()
    # a package's __init__ that re-exports its modules is not a cycle with them: drop package -> child edges
    for mod in graph:
        graph[mod] = {t for t in graph[mod] if not t.startswith(mod + ".")}
    assert graph["anchored_learning.evaluation.suites"] >= {"anchored_learning.tasks.benchmarks"}
    assert find_cycle(graph) is None, find_cycle(graph)


def test_method_and_benchmark_names_live_in_their_registries():
    import dataclasses

    from anchored_learning.config import AnchoredSFTConfig
    from anchored_learning.evaluation.suites import SUITES
    from anchored_learning.experiment.experiment_config import VARIANTS
    from anchored_learning.methods import METHODS
    from anchored_learning.tasks.benchmarks import BENCHMARKS
    from anchored_learning.tasks.registry import TASKS

    method_field = {f.name: f for f in dataclasses.fields(AnchoredSFTConfig)}["method"]
    assert method_field.metadata["choices"] == list(METHODS)
    assert set(VARIANTS) == set(METHODS) | {"lora", "wise_ft"} and "lora" not in METHODS
    fields = {f.name for f in dataclasses.fields(AnchoredSFTConfig)}
    for m in METHODS.values():  # every field a method reads or fixes is a config field
        assert set(m.reads) | set(m.fixed) <= fields, m.name
    fields = {f.name for f in dataclasses.fields(AnchoredSFTConfig)}
    for m in METHODS.values():  # every field a method reads or fixes is a config field
        assert set(m.reads) | set(m.fixed) <= fields, m.name
    assert {n for n, s in SUITES.items() if s.kind == "mc"} == set(BENCHMARKS)
    assert {n for n, s in SUITES.items() if s.kind == "generation"} == set(TASKS)


def _source_files() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def test_no_source_file_over_600_lines_and_no_function_over_80():
    long_files = {str(p.relative_to(SRC)): n for p in _source_files() if (n := len(p.read_text().splitlines())) > 600}
    assert not long_files, long_files
    long_functions = {}
    for p in _source_files():
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > 80:
                long_functions[f"{p.relative_to(SRC)}:{node.name}"] = node.end_lineno - node.lineno + 1
    assert not long_functions, long_functions


def test_no_two_source_files_share_a_name():
    names: dict[str, list[str]] = {}
    for p in SRC.rglob("*.py"):
        if p.name != "__init__.py":
            names.setdefault(p.name, []).append(str(p.relative_to(SRC)))
    assert not {n: ps for n, ps in names.items() if len(ps) > 1}


def test_method_hyperparameters_are_declared_once():
    """A hyper-parameter that both ``anchored train`` (AnchoredSFTConfig) and ``anchored run``
    (ExperimentConfig) set has one default and one help text, from methods.HYPERPARAMETERS."""
    import dataclasses

    from anchored_learning.config import AnchoredSFTConfig
    from anchored_learning.experiment import ExperimentConfig
    from anchored_learning.methods import HYPERPARAMETERS, METHODS

    exp = {f.name: f for f in dataclasses.fields(ExperimentConfig)}
    train = {f.name: f for f in dataclasses.fields(AnchoredSFTConfig)}
    for name, h in HYPERPARAMETERS.items():
        assert train[name].metadata["help"] == exp[name].metadata["help"] == h["help"], name
        assert train[name].default == h["default"], name
        assert exp[name].default in (None, h["default"]), name  # None: the recipe sets it
        assert exp[name].metadata.get("choices") == h.get("choices"), name
    # every method hyper-parameter an experiment also sets is one of them (none declared twice)
    both = {f for m in METHODS.values() for f in m.reads} | {"outer_iterations", "inner_epochs", "anchor_source"}
    assert both & set(exp) <= set(HYPERPARAMETERS)

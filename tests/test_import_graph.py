"""No import cycles, between apps or between modules of one app (docs/architecture.md, "Layout").

The graph is built from the source with `ast`: module-level *and* function-level imports count (an import
moved into a function still makes the modules depend on each other; it only hides the cycle), imports under
`if TYPE_CHECKING:` do not (they never run). The composition root wires the apps together and may import
anything; nothing may import it: Django's settings, the root URLconfs, the ASGI entry point and every
app's `apps.py` (where backends, post-processors and signal receivers are registered in `ready()`).
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.sources import module_name, project_modules

COMPOSITION_ROOT = {"config.settings", "config.urls", "config.api_urls", "config.asgi"}
# The layers of docs/architecture.md ("Layout"), bottom first: an import between two apps only goes down.
LAYERS = (("config",), ("accounts",), ("billing",), ("downloads",), ("seedr", "servers"), ("streaming", "indexers"),
          ("audiobooks",))


def is_composition_root(module: str) -> bool:
    return module in COMPOSITION_ROOT or module.endswith(".apps")


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    line: int

    def __str__(self) -> str:
        return f"{self.source} -> {self.target} (line {self.line})"


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement anywhere in the tree (functions, classes, try blocks), except the body of an
    `if TYPE_CHECKING:` (its `else:` does run)."""
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        yield node
        return
    if isinstance(node, ast.If) and _is_type_checking(node.test):
        children: Iterable[ast.AST] = node.orelse
    else:
        children = ast.iter_child_nodes(node)
    for child in children:
        yield from _import_nodes(child)


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if node.level == 0:
        return node.module or ""
    package = module.split(".") if is_package else module.split(".")[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool, known: set[str]) -> set[str]:
    """The project modules an import statement loads, named as precisely as the statement allows:
    `from a.b import c` is module a.b.c when c is a module, else a.b."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = _absolute(node, module, is_package)
        names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
    found = set()
    for name in names:
        while name and name not in known:  # `import a.b.c` of a non-module attribute path: its module
            name = name.rpartition(".")[0]
        if name:
            found.add(name)
    return found


def import_graph(modules: dict[str, Path]) -> dict[str, list[Edge]]:
    known = set(modules)
    graph: dict[str, list[Edge]] = {}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        is_package = path.name == "__init__.py"
        edges = {}
        for node in _import_nodes(tree):
            for target in _targets(node, module, is_package, known) - {module}:
                edges.setdefault(target, Edge(module, target, node.lineno))
        graph[module] = sorted(edges.values(), key=lambda e: e.target)
    return graph


def strongly_connected(nodes: Iterable[str], successors: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative; the components with more than one node, each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for start in sorted(nodes):
        if start in index:
            continue
        work = [(start, iter(sorted(successors.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(successors.get(child, ())))))
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
                if len(component) > 1:
                    components.append(sorted(component))
    return sorted(components)


def one_cycle(component: list[str], successors: dict[str, set[str]]) -> list[str]:
    """A shortest cycle through the component's first node (breadth-first), to print a readable path."""
    members = set(component)
    start = component[0]
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(successors.get(node, ())):
                if child == start:
                    return [*paths[node], start]
                if child in members and child not in paths:
                    paths[child] = [*paths[node], child]
                    following.append(child)
        frontier = following
    return component


def app_of(module: str) -> str:
    return module.split(".", 1)[0]


def runtime_edges(graph: dict[str, list[Edge]]) -> list[Edge]:
    """The edges between modules below the composition root (the root's own imports wire, they do not layer)."""
    return [e for edges in graph.values() for e in edges if not is_composition_root(e.source)]


def module_cycles(graph: dict[str, list[Edge]]) -> list[str]:
    successors: dict[str, set[str]] = {}
    lines = {}
    for edge in runtime_edges(graph):
        successors.setdefault(edge.source, set()).add(edge.target)
        lines[edge.source, edge.target] = edge.line
    reports = []
    for component in strongly_connected(graph, successors):
        cycle = one_cycle(component, successors)
        steps = [f"{a} -> {b} (line {lines[a, b]})" for a, b in itertools.pairwise(cycle)]
        reports.append(f"modules {component}: " + "; ".join(steps))
    return reports


def app_cycles(graph: dict[str, list[Edge]]) -> list[str]:
    successors: dict[str, set[str]] = {}
    by_pair: dict[tuple[str, str], list[Edge]] = {}
    for edge in runtime_edges(graph):
        source, target = app_of(edge.source), app_of(edge.target)
        if source != target:
            successors.setdefault(source, set()).add(target)
            by_pair.setdefault((source, target), []).append(edge)
    reports = []
    for component in strongly_connected({app_of(m) for m in graph}, successors):
        cycle = one_cycle(component, successors)
        # The imports both ways between two apps (any of them may be the one to move), else along one cycle.
        pairs = [(a, b) for a, b in sorted(by_pair) if a in component and (b, a) in by_pair] or list(
            itertools.pairwise(cycle))
        inside = [str(e) for pair in pairs for e in by_pair[pair]]
        reports.append(f"apps {component} ({' -> '.join(cycle)}):\n    " + "\n    ".join(inside))
    return reports


# --- the project ------------------------------------------------------------------------------------


def test_no_import_cycle_between_modules():
    cycles = module_cycles(import_graph(project_modules()))
    assert not cycles, "import cycles between modules:\n" + "\n".join(cycles)


def test_no_import_cycle_between_apps():
    cycles = app_cycles(import_graph(project_modules()))
    assert not cycles, "import cycles between apps:\n" + "\n".join(cycles)


def layering_violations(graph: dict[str, list[Edge]]) -> list[str]:
    level = {app: depth for depth, apps in enumerate(LAYERS) for app in apps}
    return [str(e) for e in runtime_edges(graph)
            if app_of(e.source) != app_of(e.target) and level[app_of(e.source)] <= level[app_of(e.target)]]


def test_imports_between_apps_only_go_down_the_layers():
    violations = layering_violations(import_graph(project_modules()))
    assert not violations, "an app imports one of its own layer or above (docs/architecture.md, Layout):\n" + (
        "\n".join(violations))


def test_nothing_imports_the_composition_root():
    graph = import_graph(project_modules())
    offending = [str(e) for edges in graph.values() for e in edges
                 if is_composition_root(e.target) and not is_composition_root(e.source)]
    assert not offending, "only the composition root may import settings, URLconfs, asgi and apps:\n" + "\n".join(
        offending)


# --- the checker itself, on a small tree --------------------------------------------------------------


def _tree(root: Path, files: dict[str, str]) -> dict[str, Path]:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return {module_name(root / relative, root): root / relative for relative in files}


def test_checker_finds_function_level_and_relative_cycles(tmp_path):
    modules = _tree(tmp_path, {
        "billing/__init__.py": "",
        "billing/services.py": "def used():\n    from downloads.models import Job\n",
        "downloads/__init__.py": "",
        "downloads/models.py": "from . import events\n",
        "downloads/events.py": "from .models import Job\n",
        "downloads/services.py": "from billing import services\n",
    })
    graph = import_graph(modules)
    assert module_cycles(graph) == [
        "modules ['downloads.events', 'downloads.models']: downloads.events -> downloads.models (line 1); "
        "downloads.models -> downloads.events (line 1)"
    ]
    [apps] = app_cycles(graph)
    assert apps.startswith("apps ['billing', 'downloads'] (billing -> downloads -> billing):")
    assert "billing.services -> downloads.models (line 2)" in apps
    assert "downloads.services -> billing.services (line 1)" in apps
    assert layering_violations(graph) == ["billing.services -> downloads.models (line 2)"]


def test_checker_skips_type_checking_and_the_composition_root(tmp_path):
    modules = _tree(tmp_path, {
        "config/__init__.py": "",
        "config/urls.py": "import accounts.views\n",
        "accounts/__init__.py": "",
        "accounts/apps.py": "def ready():\n    import billing.services\n",
        "accounts/views.py": (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from billing.models import Plan\n"
        ),
        "billing/__init__.py": "",
        "billing/models.py": "",
        "billing/services.py": "import accounts.views\n",
    })
    graph = import_graph(modules)
    assert module_cycles(graph) == [] and app_cycles(graph) == []
    assert [e.target for e in graph["accounts.views"]] == []
    assert [e.target for e in graph["accounts.apps"]] == ["billing.services"]

"""No module of src/event_spine imports itself back, through any chain of imports.

Walked with ast, not by importing: every ``import``/``from ... import`` counts, also
under ``if TYPE_CHECKING:`` and inside functions (a cycle hidden there still ties the
two modules together). A second, package-level view of what runs at import time
(module level, TYPE_CHECKING blocks included) adds the edge Python itself adds,
"importing ``a.b.c`` first runs ``a/b/__init__.py``"; its cycles go through
package re-exports and are listed below (the store seams' cycle went when they moved
into backends/, issue 18 item 2): the list may only shrink.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
ROOT = "event_spine"

#: Package-level cycles that exist today (sorted members); remove one once it is gone.
KNOWN_PACKAGE_CYCLES: set[tuple[str, ...]] = set()


def modules() -> dict[str, Path]:
    found = {}
    for path in (SRC / ROOT).rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def import_nodes(tree: ast.AST, *, in_functions: bool) -> Iterator[ast.stmt]:
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif in_functions or not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield from import_nodes(node, in_functions=in_functions)


def imported_names(module: str, path: Path, *, in_functions: bool) -> Iterator[str]:
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    tree = ast.parse(path.read_text(), str(path))
    for node in import_nodes(tree, in_functions=in_functions):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def graph(*, with_packages: bool) -> dict[str, set[str]]:
    mods = modules()

    def resolve(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    edges: dict[str, set[str]] = {m: set() for m in mods}
    for module, path in mods.items():
        # Package view: what runs at import time (a function's import runs when called).
        for name in imported_names(module, path, in_functions=not with_packages):
            target = resolve(name) if name.startswith(ROOT + ".") else None
            if target is None or target == module:
                continue
            edges[module].add(target)
            parent = target.rpartition(".")[0]
            while with_packages and parent not in ("", ROOT):
                if not module.startswith(parent + "."):
                    edges[module].add(parent)
                parent = parent.rpartition(".")[0]
    return edges


def cycles(edges: dict[str, set[str]]) -> list[tuple[str, ...]]:
    """Strongly connected components of more than one module (iterative Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[tuple[str, ...]] = []
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
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
                    work.append((child, iter(sorted(edges[child]))))
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
                    found.append(tuple(sorted(component)))
    return found


def test_the_walk_sees_the_imports() -> None:
    edges = graph(with_packages=False)
    assert "event_spine.pipeline.batches" in edges["event_spine.sink_workers.worker"]
    assert "event_spine.errors" in edges["event_spine.backends.catalog"]
    # A function-level import counts: the spec loads its store classes lazily.
    assert "event_spine.backends.cosmos.events" in edges["event_spine.backends.cosmos"]


def test_no_module_imports_itself_back() -> None:
    assert cycles(graph(with_packages=False)) == []


def test_package_level_cycles_only_shrink() -> None:
    found = set(cycles(graph(with_packages=True)))
    new = found - KNOWN_PACKAGE_CYCLES
    assert not new, f"new import cycle(s) through package __init__ modules: {sorted(new)}"
    gone = KNOWN_PACKAGE_CYCLES - found
    assert not gone, f"cycle(s) broken, remove them from KNOWN_PACKAGE_CYCLES: {sorted(gone)}"

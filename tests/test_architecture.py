"""The shape of the code: imports run one way (kernels <- moe <- bench), no import cycle among the
project's modules (function-level imports included), no deferred import of a project module, and no
module so long that it does two jobs unless its first lines say why.

The graph is read from the source with ``ast``, so it sees every import, wherever it stands.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("kernels", "moe", "bench")  # the layers, lowest first: each imports only those before it
MAX_LINES = 400
LONG_MARK = "long because"  # a module over MAX_LINES says why within its first 20 lines


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def imports(name: str, path: Path, modules: dict[str, Path]) -> list[tuple[str, bool, int]]:
    """(imported project module, at module level?, line) for every import in the file."""
    is_pkg = path.name == "__init__.py"
    tree = ast.parse(path.read_text(), filename=str(path))
    top_level = {id(node) for node in tree.body}
    for node in tree.body:  # `if TYPE_CHECKING:` / `try:` blocks at module level still count as module level
        if isinstance(node, (ast.If, ast.Try)):
            top_level.update(id(n) for n in ast.walk(node))
    out = []
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_pkg else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            # `from pkg import mod` imports the module pkg.mod; `from mod import name` imports mod
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        for target in targets:
            while target and target not in modules:  # `import moe.routers.base as b` -> that module
                target = target.rpartition(".")[0]
            if target and target != name:
                out.append((target, id(node) in top_level, node.lineno))
    return out


MODULES = project_modules()
GRAPH = {name: imports(name, path, MODULES) for name, path in MODULES.items()}


def cycles(graph: dict[str, list[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, out, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_the_import_graph_sees_function_level_imports():
    # the reader itself: a deferred relative import and a `from pkg import module` both become edges
    src = "def f():\n    from .b import x\n    from pkg import c\n"
    mods = {"pkg": Path("pkg/__init__.py"), "pkg.a": Path("pkg/a.py"), "pkg.b": Path("pkg/b.py"), "pkg.c": Path("pkg/c.py")}
    tmp = ROOT / ".pytest-arch-probe.py"
    tmp.write_text(src)
    try:
        got = imports("pkg.a", tmp, mods)
    finally:
        tmp.unlink()
    assert [(t, top) for t, top, _ in got] == [("pkg.b", False), ("pkg.c", False)]
    assert cycles({"a": ["b"], "b": ["a"], "c": ["a"]}) == [["a", "b"]]


def test_no_import_cycle_among_project_modules():
    found = cycles({m: [t for t, _, _ in edges] for m, edges in GRAPH.items()})
    assert not found, "import cycles (function-level imports included): " + "; ".join(" <-> ".join(c) for c in found)


@pytest.mark.parametrize("layer", PACKAGES)
def test_imports_run_one_way(layer):
    above = PACKAGES[PACKAGES.index(layer) + 1:]
    bad = [f"{m}:{line} imports {t}" for m, edges in GRAPH.items() if m.split(".")[0] == layer
           for t, _, line in edges if t.split(".")[0] in above]
    assert not bad, f"{layer} must not import {', '.join(above)}: {bad}"


def test_no_deferred_import_of_a_project_module():
    bad = [f"{m}:{line} imports {t} inside a function" for m, edges in GRAPH.items() for t, top, line in edges if not top]
    assert not bad, bad


def test_no_module_is_long_without_saying_why():
    long = []
    for name, path in MODULES.items():
        lines = path.read_text().splitlines()
        if len(lines) > MAX_LINES and LONG_MARK not in "\n".join(lines[:20]).lower():
            long.append(f"{path.relative_to(ROOT)} ({len(lines)} lines)")
    assert not long, f"over {MAX_LINES} lines, with no '{LONG_MARK}' in the first 20 lines: {long}"

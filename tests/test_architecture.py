"""The shape of the code: imports run one way (kernels <- moe <- bench), no import cycle among the
project's modules (function-level imports included), no deferred import of a project module, and no
module so long that it does two jobs unless its first lines say why.

The graph is read from the source with ``ast``, so it sees every import, wherever it stands.
"""
from __future__ import annotations

import ast
import functools
import re
import subprocess
import sys
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


def parsed(path: Path) -> tuple[ast.Module, list[ast.AST]]:
    """(syntax tree, every node of it in ``ast.walk``'s order) of a file: parsed once per test process for all the
    checks below (keyed by the file's text, so a file written by a test is read as it is now)."""
    return _parsed(str(path), path.read_text())


@functools.lru_cache(maxsize=None)
def _parsed(filename: str, text: str) -> tuple[ast.Module, list[ast.AST]]:
    tree = ast.parse(text, filename=filename)
    return tree, list(ast.walk(tree))


def imports(name: str, path: Path, modules: dict[str, Path]) -> list[tuple[str, bool, int]]:
    """(imported project module, at module level?, line) for every import in the file."""
    is_pkg = path.name == "__init__.py"
    tree, nodes = parsed(path)
    top_level = {id(node) for node in tree.body}
    for node in tree.body:  # `if TYPE_CHECKING:` / `try:` blocks at module level still count as module level
        if isinstance(node, (ast.If, ast.Try)):
            top_level.update(id(n) for n in ast.walk(node))
    out = []
    for node in nodes:
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


@functools.lru_cache(maxsize=None)
def import_graph() -> dict[str, list[tuple[str, bool, int]]]:
    """Every project module's imports (:func:`imports`): parsed on first use, not when the file is collected (each
    pytest-xdist worker collects every test file; one of them runs these tests)."""
    return {name: imports(name, path, MODULES) for name, path in MODULES.items()}


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


def test_the_import_graph_sees_function_level_imports(tmp_path):
    # the reader itself: a deferred relative import and a `from pkg import module` both become edges
    src = "def f():\n    from .b import x\n    from pkg import c\n"
    mods = {"pkg": Path("pkg/__init__.py"), "pkg.a": Path("pkg/a.py"), "pkg.b": Path("pkg/b.py"), "pkg.c": Path("pkg/c.py")}
    tmp = tmp_path / "a.py"  # not in the checkout: a parallel test worker walking it never sees it
    tmp.write_text(src)
    got = imports("pkg.a", tmp, mods)
    assert [(t, top) for t, top, _ in got] == [("pkg.b", False), ("pkg.c", False)]
    assert cycles({"a": ["b"], "b": ["a"], "c": ["a"]}) == [["a", "b"]]


def test_no_import_cycle_among_project_modules():
    found = cycles({m: [t for t, _, _ in edges] for m, edges in import_graph().items()})
    assert not found, "import cycles (function-level imports included): " + "; ".join(" <-> ".join(c) for c in found)


@pytest.mark.parametrize("layer", PACKAGES)
def test_imports_run_one_way(layer):
    above = PACKAGES[PACKAGES.index(layer) + 1:]
    bad = [f"{m}:{line} imports {t}" for m, edges in import_graph().items() if m.split(".")[0] == layer
           for t, _, line in edges if t.split(".")[0] in above]
    assert not bad, f"{layer} must not import {', '.join(above)}: {bad}"


def test_no_deferred_import_of_a_project_module():
    bad = [f"{m}:{line} imports {t} inside a function" for m, edges in import_graph().items() for t, top, line in edges if not top]
    assert not bad, bad


def test_no_module_is_long_without_saying_why():
    long = []
    for name, path in MODULES.items():
        lines = path.read_text().splitlines()
        if len(lines) > MAX_LINES and LONG_MARK not in "\n".join(lines[:20]).lower():
            long.append(f"{path.relative_to(ROOT)} ({len(lines)} lines)")
    assert not long, f"over {MAX_LINES} lines, with no '{LONG_MARK}' in the first 20 lines: {long}"


# --- package __init__ files, the moe subpackages by job, bench's applications, the run record ---

JOBS = ("moe.records", "moe.scoring", "moe.training", "moe.pictures")  # lowest first: each imports only those before it
LIGHT_INITS = JOBS + ("moe", "bench", "bench.sweep", "bench.table", "bench.report", "bench.reproduce", "bench.compare",
                      "bench.figures", "bench.speed")
ENTRY_POINTS = ("cli", "__main__")  # a package's command line: the top of its application, it may call the pipeline
RECORD_MODULE = "moe.records.record"


def package_edges(name: str, path: Path) -> list[str]:
    """The packages whose ``__init__`` a module runs by name: ``from pkg import x`` and ``import pkg`` run pkg's
    ``__init__`` whatever x is (a module or a name), so ``from pkg import mod`` is an edge to pkg as well."""
    out = []
    for node in parsed(path)[1]:
        if isinstance(node, ast.ImportFrom) and not node.level and node.module in MODULES:
            out.append(node.module)
        elif isinstance(node, ast.Import):
            out += [a.name for a in node.names if a.name in MODULES and MODULES[a.name].name == "__init__.py"]
    return [m for m in out if m != name and MODULES[m].name == "__init__.py"]


def test_no_import_cycle_through_a_package_init():
    graph = {m: [t for t, _, _ in edges] + package_edges(m, MODULES[m]) for m, edges in import_graph().items()}
    found = cycles(graph)
    assert not found, "import cycles through a package __init__: " + "; ".join(" <-> ".join(c) for c in found)


def test_the_cycle_check_sees_a_cycle_through_an_init(tmp_path):
    # `from pkg import mod` inside pkg.runner, while pkg/__init__ imports pkg.runner: a cycle through the __init__
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("from pkg.runner import run\n")
    (tmp_path / "pkg" / "runner.py").write_text("from pkg import claims\n")
    global MODULES
    saved, MODULES = MODULES, {"pkg": tmp_path / "pkg" / "__init__.py", "pkg.runner": tmp_path / "pkg" / "runner.py",
                               "pkg.claims": tmp_path / "pkg" / "claims.py"}
    try:
        graph = {"pkg": ["pkg.runner"], "pkg.runner": ["pkg.claims"] + package_edges("pkg.runner", MODULES["pkg.runner"]),
                 "pkg.claims": []}
    finally:
        MODULES = saved
    assert cycles(graph) == [["pkg", "pkg.runner"]]


@pytest.mark.parametrize("package", LIGHT_INITS)
def test_package_init_imports_nothing(package):
    tree = ast.parse(MODULES[package].read_text())
    found = [ast.unparse(n) for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
             and not (isinstance(n, ast.ImportFrom) and n.module == "__future__")]
    assert not found, f"{package}/__init__.py imports {found}: a package's __init__ imports nothing (say what it owns)"


def test_the_claims_catalogue_imports_without_torch_or_pandas():
    code = ("import sys; import bench.reproduce.claims; "
            "print(' '.join(m for m in ('torch', 'pandas', 'numpy', 'ray') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "", f"importing the claims catalogue loads {out.strip()}"


def job(module: str) -> str | None:
    return next((j for j in JOBS if module == j or module.startswith(j + ".")), None)


def test_moe_subpackages_by_job_import_only_those_below():
    bad = [f"{m}:{line} imports {t}" for m, edges in import_graph().items() if job(m) for t, _, line in edges
           if job(t) and JOBS.index(job(t)) > JOBS.index(job(m))]
    assert not bad, f"moe's subpackages by job are layered {' < '.join(JOBS)}: {bad}"


def application(module: str) -> str | None:
    """bench's application a module belongs to (``bench.sweep``, ``bench.table``, ..., or a top-level module)."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "bench" and len(parts) > 1 else None


def test_bench_applications_have_no_doors_both_ways():
    doors = {(application(m), application(t)) for m, edges in import_graph().items() for t, _, _ in edges
             if application(m) and application(t) and application(m) != application(t)
             and m.rpartition(".")[2] not in ENTRY_POINTS}
    both = sorted(f"{a} <-> {b}" for a, b in doors if (b, a) in doors and a < b)
    assert not both, f"bench applications that import each other (entry points aside): {both}"


def private_uses(name: str, path: Path) -> list[tuple[str, int]]:
    """(module._name, line) for every private name of another project module this module imports or reads."""
    nodes = parsed(path)[1]
    aliases, out = {}, []
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for a in node.names:
                full = f"{node.module}.{a.name}"
                if full in MODULES:
                    aliases[a.asname or a.name] = full
                elif node.module in MODULES and a.name.startswith("_") and not a.name.startswith("__"):
                    out.append((full, node.lineno))
                elif node.module in MODULES and any(p.startswith("_") and not p.startswith("__")
                                                    for p in node.module.split(".")):
                    out.append((full, node.lineno))  # a public name of a private module
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name in MODULES:
                    aliases[a.asname or a.name] = a.name
    for node in nodes:
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            base = ast.unparse(node.value)
            target = aliases.get(base) or (base if base in MODULES else None)
            if target and target != name:
                out.append((f"{target}.{node.attr}", node.lineno))
    return out


def package_of(module: str) -> str:
    path = MODULES[module]
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def test_no_module_uses_another_packages_private_name():
    bad = [f"{m}:{line} uses {used}" for m, p in MODULES.items() for used, line in private_uses(m, p)
           if package_of(used.rpartition(".")[0]) != package_of(m)]
    assert not bad, f"private names are their own package's: make it public API or keep it inside: {bad}"


def test_records_are_built_only_in_the_record_module():
    """A run record (a dict with a ``schema`` key) is made by moe.records.record's builders; everyone else adds
    to one (a sweep its ``bench`` block) or reads it."""
    bad = []
    for m, p in MODULES.items():
        if m == RECORD_MODULE:
            continue
        for node in parsed(p)[1]:
            keys = [k.value for k in getattr(node, "keys", []) if isinstance(node, ast.Dict) and isinstance(k, ast.Constant)]
            stores = (isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Store)
                      and isinstance(node.slice, ast.Constant) and node.slice.value == "schema")
            if "schema" in keys or stores:
                bad.append(f"{m}:{node.lineno}")
    assert not bad, f"run records built outside {RECORD_MODULE}: {bad}"


def test_the_private_name_check_sees_both_forms(tmp_path):
    src = tmp_path / "user.py"
    src.write_text("from moe.training.loop import _hidden\nfrom moe.training import loop\nloop._other()\n"
                   "from kernels._common import resolve_backend\n")
    assert private_uses("bench.sweep.user", src) == [("moe.training.loop._hidden", 1), ("kernels._common.resolve_backend", 4),
                                                     ("moe.training.loop._other", 3)]


def test_validation_sits_below_the_model():
    """moe.validate reads field limits and the components' own rules; it builds no model and imports no training
    (the model's memory estimate is moe.model's, added by moe.model.checked_config)."""
    bad = [t for t, _, _ in import_graph()["moe.validate"] if t == "moe.model" or job(t)]
    assert not bad, f"moe.validate imports {bad}"


# --- the tree names no machine, and the README's 'What is where' names what exists, all of it ---

MACHINE_PATH = re.compile(r"(?:^|[^A-Za-z0-9_.~$])/(?:work|root|home|Users|mnt|scratch)/")


def tracked_files() -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
        return [ROOT / f for f in out if (ROOT / f).is_file()]
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: every file but the environment's
        skip = {".git", ".venv", "results", "__pycache__", "node_modules"}
        return [p for p in ROOT.rglob("*") if p.is_file() and not skip & set(p.relative_to(ROOT).parts)]


def test_no_path_of_one_machine_anywhere_in_the_tree():
    found = []
    for path in tracked_files():
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        found += [f"{path.relative_to(ROOT)}:{n}" for n, line in enumerate(text.splitlines(), 1) if MACHINE_PATH.search(line)]
    assert not found, f"paths of one machine (absolute, under /work, /root, /home, ...): {found[:20]}"


def test_the_machine_path_check_sees_one():
    root = "/" + "work"  # written in two pieces, so that this file itself passes the check
    assert MACHINE_PATH.search(f'data_root: "{root}/data"') and MACHINE_PATH.search(f"see {root}/notes.md")
    assert not MACHINE_PATH.search("docs/work/x.md") and not MACHINE_PATH.search("~/.cache/moe-interp-bench")


WHERE_ROWS_WITH_MODULES = ("moe/", "bench/")  # rows that list their package's own modules: every one of them


def where_rows() -> dict[str, str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## What is where", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and cells[0].startswith("`"):
            for path in re.findall(r"`([^`]+)`", cells[0]):
                rows[path] = cells[1]
    return rows


def where_problems(rows: dict[str, str]) -> list[str]:
    problems = [f"{p}: no such folder" for p in rows if not (ROOT / p).is_dir()]
    packages = {str(p.parent.relative_to(ROOT)) + "/" for pkg in PACKAGES for p in (ROOT / pkg).rglob("__init__.py")
                if "__pycache__" not in p.parts}
    problems += [f"{p}: a package the table misses" for p in sorted(packages - set(rows))]
    for row in WHERE_ROWS_WITH_MODULES:
        named = set(re.findall(r"`(\w+)`", rows.get(row, "")))
        modules = {p.stem for p in (ROOT / row).glob("*.py") if p.stem != "__init__"}
        problems += [f"{row} names `{n}`, no module of it" for n in sorted(named - modules)]
        problems += [f"{row} misses its module `{m}`" for m in sorted(modules - named)]
    return problems


def test_readme_what_is_where_names_what_exists_and_misses_nothing():
    problems = where_problems(where_rows())
    assert not problems, problems


def test_the_what_is_where_check_sees_a_missing_and_a_ghost_module():
    rows = dict(where_rows())
    rows["moe/"] = rows["moe/"] + " `ghost_module`"
    rows.pop("moe/scoring/")
    problems = where_problems(rows)
    assert "moe/ names `ghost_module`, no module of it" in problems and "moe/scoring/: a package the table misses" in problems


def test_the_version_is_written_once_in_pyproject():
    import tomllib

    from moe.records.record import project_version, versions

    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert project_version() == version == versions()["moe_interp_bench"]
    written = [str(p.relative_to(ROOT)) for p in MODULES.values() if f'"{version}"' in p.read_text()]
    assert not written, f"the version {version} written again in {written}: read moe.records.record.project_version"

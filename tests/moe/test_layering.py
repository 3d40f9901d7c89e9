"""The shape of moe/: config a leaf, and each component package keeps its base module and an __init__ that
only imports its plugins. (Cycles, import direction, deferred imports and module length for the whole
project: tests/test_architecture.py.)"""
import ast
import functools
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("data", "routers", "experts", "objectives")


def modules() -> dict[str, Path]:
    out = {}
    for f in sorted((ROOT / "moe").rglob("*.py")):
        parts = list(f.relative_to(ROOT).with_suffix("").parts)
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    return out


MODULES = modules()


def imports(path: Path) -> list[tuple[str, bool]]:
    """(imported name, inside a function?) of every import statement; ``from a import b`` gives a.b."""
    tree = ast.parse(path.read_text())
    inner = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
             for n in ast.walk(f) if n is not f}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, id(node) in inner) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import"
            out += [(f"{node.module}.{a.name}", id(node) in inner) for a in node.names]
    return out


def resolve(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


@functools.cache  # the source does not change during a test session: read every module once, not once per question
def graph() -> dict[str, set[str]]:
    return {m: {r for name, _ in imports(f) if (r := resolve(name)) and r != m} for m, f in MODULES.items()}


def test_config_is_a_leaf():
    assert graph()["moe.config"] <= {"moe.registry", "moe.strict_files"}
    assert graph()["moe.strict_files"] == set()
    assert graph()["moe.registry"] == set()


@pytest.mark.parametrize("package", PACKAGES)
def test_component_packages_keep_their_base_and_their_init_only_imports(package):
    init = ast.parse(MODULES[f"moe.{package}"].read_text())
    body = [n for n in init.body if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))]
    assert body and all(isinstance(n, (ast.Import, ast.ImportFrom)) for n in body)
    base = graph()[f"moe.{package}.base"]
    assert not any(m.startswith(f"moe.{package}.") for m in base), "a base module imports none of its plugins"
    plugins = [m for m in MODULES if m.startswith(f"moe.{package}.") and m != f"moe.{package}.base"]
    assert all(f"moe.{package}" not in graph()[p] for p in plugins), "plugins import the base, not the package"

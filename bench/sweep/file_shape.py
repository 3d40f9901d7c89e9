"""The shape of a sweep file, checked before anything reads its values (``bench.sweep.spec`` then does).

The file is UTF-8 text (no NUL byte), strict YAML (``moe.strict_files.load_yaml``: a repeated key is an error
naming the key and both lines) holding a mapping whose sections have these types::

    description  a string            version    an integer >= 0       dataset   a string
    budget       a mapping           settings   a mapping             resources a mapping
    budgets      a mapping of name -> mapping of --set overrides
    grid         a mapping of config field -> list of values (a single value: a list of one), or a
                 non-empty list of such mappings (their union)

A grid of more than ``MAX_TRIALS`` trials (the product of its axis lengths, counted without expanding
it) is refused at once: expanding a grid of a million trials costs a minute and then all the memory.
Each problem is one line naming the section and the type it must have.
"""
from __future__ import annotations

import collections

import math
from pathlib import Path
from typing import Any

import yaml

from moe.strict_files import DuplicateKeyError, load_yaml
from moe.registry import shown

SWEEP_DIR = Path(__file__).resolve().parents[2] / "sweeps"  # the registry: one file per sweep (registered)
MAX_TRIALS = 10_000  # 20 times the largest sweep here; checking a trial costs ~1 ms, running one seconds
MAPPINGS = ("budget", "settings", "resources", "budgets")


class ShapeError(ValueError):
    """A sweep file that cannot be read as a YAML mapping (binary, not UTF-8, bad YAML, a repeated key)."""


def registered(folder: str | Path | None = None) -> dict[str, Path]:
    """Sweep name -> file, for every ``*.yaml`` / ``*.yml`` in ``folder`` (default: the repository's sweeps/);
    ShapeError for a name defined twice."""
    folder = Path(folder) if folder is not None else SWEEP_DIR
    out: dict[str, Path] = {}
    for p in sorted(folder.glob("*.y*ml")):
        if p.suffix not in (".yaml", ".yml"):
            continue
        if p.stem in out:
            raise ShapeError(f"sweep {p.stem!r} is defined twice: {out[p.stem].name} and {p.name}")
        out[p.stem] = p
    return out


def sweep_path(name: str, folder: str | Path | None = None) -> Path | None:
    """The file of the sweep ``name``: a path to a YAML file, else a registered name (:func:`registered`); None when
    it is neither."""
    p = Path(name)
    if p.suffix in (".yaml", ".yml") and p.is_file():
        return p.resolve()
    return registered(folder).get(name)


def read_file(path: Path) -> Any:
    """The parsed YAML of a sweep file; ShapeError saying why it cannot be read."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise ShapeError(f"cannot read it: {err.strerror or err}") from None
    if b"\0" in raw:
        raise ShapeError("a binary file, not a YAML sweep file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[:err.start].count(b"\n") + 1
        raise ShapeError(f"not UTF-8 text (byte 0x{raw[err.start]:02x} on line {line})") from None
    return parse_yaml(text, "not valid YAML")


def parse_yaml(text: str, what: str) -> Any:
    """Strict YAML; ShapeError ``what: the first line of the parser's message`` (a repeated key included)."""
    try:
        return load_yaml(text)
    except DuplicateKeyError as err:
        raise ShapeError(str(err)) from None
    except (yaml.YAMLError, ValueError, RecursionError) as err:  # ValueError: a date like 2020-13-45
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ShapeError(f"{what}: {first}") from None


def _kind(value: Any) -> str:
    names = {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "an integer",
             float: "a number", type(None): "null"}
    return names.get(type(value), f"a {type(value).__name__}")


def section_problems(data: dict[str, Any]) -> list[str]:
    """One line per section of the wrong type (container sections: before anything is built from them)."""
    problems = [f"{key}: must be a mapping, got {_kind(data[key])}" for key in MAPPINGS
                if data.get(key) is not None and not isinstance(data[key], dict)]
    budgets = data.get("budgets")
    if isinstance(budgets, dict):
        problems += [f"budgets.{name}: must be a mapping of --set overrides, got {_kind(v)}"
                     for name, v in budgets.items() if not isinstance(v, dict)]
    grid = data.get("grid")
    if isinstance(grid, list):
        if not grid:
            problems.append("grid: an empty list; must be a mapping of config field -> list of values")
        problems += [f"grid[{i}]: must be a mapping of config field -> list of values, got {_kind(sub)}"
                     for i, sub in enumerate(grid) if not isinstance(sub, dict)]
    elif not isinstance(grid, dict):
        problems.append(f"grid: must be a mapping of config field -> list of values (or a list of such "
                        f"mappings), got {_kind(grid)}")
    return problems


def value_problems(description: Any, version: Any, dataset: Any) -> list[str]:
    """The scalar sections (also after ``--set``)."""
    problems = []
    if not isinstance(description, str):
        problems.append(f"description: must be a string, got {_kind(description)}")
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        problems.append(f"version: must be an integer >= 0, got {shown(version)}")
    if not isinstance(dataset, str):
        problems.append(f"dataset: must be a string (a dataset name), got {_kind(dataset)}")
    return problems


def axis_problem(where: str, values: Any) -> str | None:
    """A grid axis holds a list of distinct values, or one value that is not a mapping (that goes inside a list)."""
    if isinstance(values, dict):
        return (f"{where}: must be a list of values, got a mapping (a mapping of fields set together goes "
                "inside the list: [{...}])")
    if isinstance(values, list) and not values:
        return f"{where}: empty list of values"
    if isinstance(values, list):
        seen = [repr(v) for v in values]
        counts = collections.Counter(seen)  # linear: an axis may be long (a --set of 100,000 seeds)
        twice = next((v for v, r in zip(values, seen) if counts[r] > 1), None)
        if twice is not None or any(counts[r] > 1 for r in seen):
            return f"{where}: the value {shown(twice)} is listed more than once (its trials would have the same config)"
    return None


def grid_size(grid: list[dict[str, Any]]) -> int:
    """The number of trials of a grid (a union of products), counted without expanding it."""
    return sum(math.prod(len(v) if isinstance(v, list) else 1 for v in sub.values())
               for sub in grid if isinstance(sub, dict))


def size_problem(grid: list[dict[str, Any]]) -> str | None:
    n = grid_size(grid)
    if n > MAX_TRIALS:
        return (f"grid: {n:,} trials, more than the cap of {MAX_TRIALS:,} trials per sweep "
                "(narrow the grid or split the sweep)")
    return None

"""Growing a finished or running sweep along its grid axes (``bench.sweep --resume DIR --add AXIS=VALUES``, and
``bench.reproduce`` when a budget asks for more of a grid than its directory holds).

A sweep grows to a *target grid*: the grid it holds with more values on some axes (more seeds, more expert counts,
more routers), block for block. The trials it has keep their indices and records; each trial of the target grid whose
configuration it lacks is appended, in the target grid's order, so that a grown sweep holds exactly the trials (names
and configs) a fresh sweep of the target grid would, and each of them trains with the same numbers whatever its index.
A target that drops a value, an axis or a block is no growth and is refused.
"""
from __future__ import annotations

import json
from typing import Any

from bench.sweep.spec import SweepError, Trial, parse_set
from moe.registry import shown, shown_key


def value_key(value: Any) -> str:
    """One grid value as comparable text (a mapping's keys sorted; 5 and 5.0 differ, as the trials' configs do)."""
    return json.dumps(value, sort_keys=True, default=str)


def axis_values(values: Any) -> list:
    return list(values) if isinstance(values, (list, tuple)) else [values]


def grown_grid(grid: list[dict[str, Any]], additions: dict[str, list]) -> list[dict[str, Any]]:
    """``grid`` with each axis of ``additions`` extended by the values it lacks, in every block that has the axis
    (in the order given, after the values there). One SweepError line for an axis no block has, naming the axes."""
    axes = list(dict.fromkeys(a for block in grid for a in block))
    unknown = [a for a in additions if a not in axes]
    if unknown:
        raise SweepError(f"--add {shown_key(unknown[0])}: not an axis of this sweep's grid; valid choices: "
                         f"{', '.join(axes) or '(none)'}")
    out = []
    for block in grid:
        new = {}
        for axis, values in block.items():
            have = axis_values(values)
            seen = {value_key(v) for v in have}
            more = [v for v in additions.get(axis, []) if value_key(v) not in seen and not seen.add(value_key(v))]
            new[axis] = have + more
        out.append(new)
    return out


def growth_problem(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> str | None:
    """Why the grid ``new`` does not hold the grid ``old`` (None when it does): the same blocks with the same axes,
    each axis's values a superset."""
    if len(old) != len(new):
        return f"the grid has {len(new)} block(s), the directory's {len(old)}"
    for i, (a, b) in enumerate(zip(old, new)):
        where = f"grid block {i + 1}: " if len(old) > 1 else ""
        if set(a) != set(b):
            return f"{where}the axes are {', '.join(b)}, the directory's {', '.join(a)}"
        for axis in a:
            dropped = [v for v in axis_values(a[axis]) if value_key(v) not in {value_key(w) for w in axis_values(b[axis])}]
            if dropped:
                return f"{where}{axis} drops {', '.join(shown(v) for v in dropped)}"
    return None


def added_values(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> dict[str, list]:
    """Axis -> the values ``new`` has beyond ``old`` (over every block, in first-seen order); {} when none."""
    out: dict[str, list] = {}
    for a, b in zip(old, new):
        for axis, values in b.items():
            have = {value_key(v) for v in axis_values(a.get(axis, []))}
            for v in axis_values(values):
                if value_key(v) not in have and value_key(v) not in {value_key(w) for w in out.get(axis, [])}:
                    out.setdefault(axis, []).append(v)
    return out


def config_key(config: dict[str, Any]) -> str:
    return value_key(config)


def grown_to(trials: list[Trial], target: list[Trial]) -> list[Trial]:
    """``trials`` and, after them, each trial of ``target`` whose config none of them has, in ``target``'s order and
    with the next indices (the trials there keep theirs, so their records stay theirs)."""
    have = {config_key(t.config) for t in trials}
    out, index = list(trials), max((t.index for t in trials), default=-1) + 1
    for t in target:
        if config_key(t.config) not in have:
            out.append(Trial(index, t.name, dict(t.config)))
            have.add(config_key(t.config))
            index += 1
    return out


def describe(added: dict[str, list]) -> str:
    """``experts 5, 20; seed 3, 4``: what a growth adds, for messages and the report."""
    return "; ".join(f"{axis} {', '.join(map(str, values))}" for axis, values in added.items())


def grown_overrides(overrides: dict[str, Any], added: dict[str, list]) -> dict[str, Any]:
    """The ``--set`` overrides a sweep ran with, each one of a grown axis (``experts`` or ``grid.experts``) extended by
    the values added, so that sweep.json says which values its trials have."""
    out = dict(overrides)
    for key, value in overrides.items():
        axis = key[len("grid."):] if key.startswith("grid.") else key
        if axis in added:
            have = axis_values(value)
            seen = {value_key(v) for v in have}
            out[key] = have + [v for v in added[axis] if value_key(v) not in seen]
    return out


def parse_additions(pairs: list[str]) -> dict[str, list]:
    """``["experts=[5,20]", "seed=3"]`` -> ``{"experts": [5, 20], "seed": [3]}``: ``--add AXIS=VALUES``, each value
    read as YAML as ``--set`` reads it (a list, or one value); one SweepError line for a bad pair."""
    out: dict[str, list] = {}
    for pair in pairs:
        parsed = parse_set([pair])  # (the one reader of KEY=VALUE pairs)
        (axis, value), = parsed.items()
        values = axis_values(value)
        if value is None or not values:
            raise SweepError(f"--add {shown(pair)}: expected AXIS=VALUES with at least one value, e.g. --add "
                             "experts=[5,20] or --add seed=3")
        out.setdefault(axis, [])
        out[axis] += [v for v in values if value_key(v) not in {value_key(w) for w in out[axis]}]
    return out

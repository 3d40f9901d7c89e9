"""Growing a finished or running sweep along its grid axes (``bench.sweep --resume DIR --add AXIS=VALUES``, and
``bench.reproduce`` when a budget asks for more of a grid than its directory holds).

A sweep grows to a *target grid*: the grid it holds with more values on some axes (more seeds, more expert counts,
more routers), block for block. The trials it has keep their indices and records; each trial of the target grid whose
configuration it lacks is appended, in the target grid's order, so that a grown sweep holds exactly the trials (names
and configs) a fresh sweep of the target grid would, and each of them trains with the same numbers whatever its index.
The target grid may be written in other blocks than the directory's (a budget that gives one regime more seeds than
another); what counts is that its trials hold every trial of the directory. A target that drops one is no growth and
is refused, naming it.
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


def dropped(trials: list[Trial], target: list[Trial], ignore: tuple[str, ...] = ()) -> list[Trial]:
    """The trials of ``trials`` whose config no trial of ``target`` has (fields ``ignore`` left out of the comparison):
    what growing to ``target`` would drop, so no growth."""
    have = {config_key(t.config, ignore) for t in target}
    return [t for t in trials if config_key(t.config, ignore) not in have]


def dropped_text(lost: list[Trial]) -> str:
    """``drops 2 run(s) the directory holds (softmax[experts=4] seed 1, ...)``."""
    shown_ = ", ".join(f"{t.name} seed {t.config.get('seed', '-')}" for t in lost[:3])
    return f"drops {len(lost)} run(s) the directory holds ({shown_}{', ...' if len(lost) > 3 else ''})"


def new_values(old: list[Trial], grown: list[Trial], ignore: tuple[str, ...] = ()) -> dict[str, list]:
    """Config field -> the values the trials of ``grown`` have that no trial of ``old`` has (first-seen order): what a
    growth adds, in the trials' own fields (``experts 20; match_loss 0.1; seed 3, 4``)."""
    seen: dict[str, set[str]] = {}
    for t in old:
        for k, v in t.config.items():
            seen.setdefault(k, set()).add(value_key(v))
    out: dict[str, list] = {}
    for t in grown:
        for k, v in t.config.items():
            if k not in ignore and value_key(v) not in seen.setdefault(k, set()):
                seen[k].add(value_key(v))
                out.setdefault(k, []).append(v)
    return out


def config_key(config: dict[str, Any], ignore: tuple[str, ...] = ()) -> str:
    return value_key({k: v for k, v in config.items() if k not in ignore})


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


def grown_overrides(overrides: dict[str, Any], grid: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``--set`` overrides a sweep ran with, those of its grid made the grown ``grid``'s: a whole ``grid`` becomes
    it, one axis (``experts`` or ``grid.experts``) the values it has over the grown grid's blocks, so that sweep.json
    says which values its trials have."""
    out = dict(overrides)
    for key in overrides:
        axis = key[len("grid."):] if key.startswith("grid.") else key
        if key == "grid":
            out[key] = grid
        elif any(axis in block for block in grid):
            values: list = []
            for block in grid:
                values += [v for v in axis_values(block.get(axis, [])) if value_key(v) not in {value_key(w) for w in values}]
            out[key] = values
    return out


def parse_additions(pairs: list[str]) -> dict[str, list]:
    """``["experts=[5,20]", "seed=3"]`` -> ``{"experts": [5, 20], "seed": [3]}``: ``--add AXIS=VALUES``, each value
    read as YAML as ``--set`` reads it (a list, or one value); one SweepError line for a bad pair."""
    out: dict[str, list] = {}
    for pair in pairs:
        parsed = parse_set([pair], flag="--add")  # (the one reader of KEY=VALUE pairs)
        (axis, value), = parsed.items()
        values = axis_values(value)
        if value is None or not values:
            raise SweepError(f"--add {shown(pair)}: expected AXIS=VALUES with at least one value, e.g. --add "
                             "experts=[5,20] or --add seed=3")
        out.setdefault(axis, [])
        out[axis] += [v for v in values if value_key(v) not in {value_key(w) for w in out[axis]}]
    return out

"""The runs still to come: for each sweep, the runs of its file's full grid (the papers' budget) against the runs its
directory has finished, and for each claim the runs it waits for ("E = 5, 20 x seeds 0-4 (60 runs)"), so that a
partial reproduction says what it has not run yet. REPRODUCTION.md ends with it (``bench.reproduce.verdict_page``).

A run counts as finished when its directory holds an ``ok`` row or record for it. Runs are matched on the fields the
full grid sets (its axes and the fields set inside its values, seed included), when the directory ran the file's
other settings (a budget that only shrinks the grid); a directory run with other settings (the seed code's presets)
is matched against the budget it ran instead, field for field: the full grid would be a new sweep. What a claim waits
for: the missing runs its filters could read, judged on their config fields alone (a filter on a score, such as
competence or experts alive, cannot be known before the run and is left open).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from bench.reproduce.claim_types import Claim
from bench.reproduce.measures import epochs_before_refit, resolve_extremes, select
from bench.sweep import spec
from bench.sweep.growth import value_key
from bench.sweep.layout import DamagedFile, SweepDir
from bench.sweep.spec import SweepError, Trial
from moe.config import FIELD_TYPES, preset_values

LOOSE = ("data_root", "n_train", "n_test")  # fitted to the data files (runner.fit_to_data) or a published placeholder
CONFIG_COLUMNS = ("epochs_before_refit",)  # derived from config fields alone: known before a run


@dataclass
class ToCome:
    sweep: str
    target: str  # "the full grid" or "the budget"
    total: int  # runs of the target
    done: int  # of them finished (ok) in the directory
    extra: int  # finished runs of the directory outside the target
    missing: list[Trial] = field(default_factory=list)
    waits: dict[str, list[Trial]] = field(default_factory=dict)  # claim -> the missing runs it could read
    note: str = ""


def grid_fields(sweep: spec.Sweep) -> list[str]:
    """Every config field a grid value of ``sweep`` sets (its axes and the fields inside ``name[k=v]`` values)."""
    out: dict[str, None] = {}
    for block in sweep.grid:
        for axis, values in block.items():
            out[axis] = None
            for v in values if isinstance(values, list) else [values]:
                out.update(dict.fromkeys(spec.expand_value(axis, v)))
    return list(out)


def _rest(d: dict[str, Any], drop: set[str]) -> str:
    return value_key({k: v for k, v in (d or {}).items() if k not in drop})


def finished_ok(folder: SweepDir) -> set[int]:
    """Trial indices with an ok record or an ok row of runs.csv (a published directory keeps no records)."""
    ok = {i for i, _, status in folder.record_statuses() if status == "ok"}
    try:
        runs = folder.read_runs_csv()
    except (DamagedFile, OSError):
        runs = None
    if runs is not None and {"index", "status"} <= set(runs.columns):
        ok |= {int(i) for i in runs.loc[runs["status"] == "ok", "index"].dropna()}
    return ok


def sweep_to_come(name: str, folder: Path, overrides: dict[str, Any], claims: list[Claim]) -> ToCome | None:
    """What ``folder`` (a sweep directory, or none yet) lacks of ``name``'s full grid, or of the budget ``overrides``
    when it ran other settings than the file's; None when the sweep file cannot be read."""
    try:
        paper = spec.load(name)
        asked = spec.load(name, overrides)
    except SweepError:
        return None
    sweep_dir = SweepDir(folder)
    trials, meta, done = [], {}, set()
    if sweep_dir.is_sweep():
        meta, trials = sweep_dir.read_meta()
        done = finished_ok(sweep_dir)
    base = meta or asked.to_dict()
    fields = grid_fields(paper)
    loose = set(LOOSE) | set(fields)
    same = (base.get("dataset") == paper.dataset
            and _rest(base.get("settings"), loose) == _rest(json.loads(json.dumps(paper.settings, default=str)), loose)
            and _rest(base.get("budget"), loose) == _rest(json.loads(json.dumps(paper.budget, default=str)), loose))
    if same:
        target, what, note = paper.trials(), "the full grid", ""

        def key(t: Trial) -> str:
            return value_key({k: t.config.get(k) for k in fields})
    else:
        target, what = asked.trials(), "the budget"
        note = "it runs other settings than the sweep file's full grid (a new sweep), so it is set against its budget"

        def key(t: Trial) -> str:
            return value_key({k: v for k, v in t.config.items() if k not in LOOSE})
    have = {key(t) for t in trials if t.index in done}
    wanted = {key(t) for t in target}
    missing = [t for t in target if key(t) not in have]
    out = ToCome(name, what, len(target), len(target) - len(missing), len(have - wanted), missing, note=note)
    out.waits = {c.name: waits_for(c, missing, target) for c in claims}
    return out


def full_config(config: dict[str, Any]) -> dict[str, Any]:
    """A trial's config as its record will hold it: every field, the defaults and its preset's values filled in."""
    return {**spec.FIELD_DEFAULTS, **preset_values(config.get("preset")), **config}


def config_frame(trials: list[Trial]) -> pd.DataFrame:
    """The trials' complete configs as a runs-like table (ok rows, list values as JSON text, as runs.csv writes them)
    with the derived config columns."""
    rows = [{"index": t.index, "name": t.name, "status": "ok",
             **{k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in full_config(t.config).items()}}
            for t in trials]
    frame = pd.DataFrame(rows)
    if not frame.empty:
        frame["epochs_before_refit"] = epochs_before_refit(frame)
    return frame


def waits_for(claim: Claim, missing: list[Trial], target: list[Trial]) -> list[Trial]:
    """The missing runs one of the claim's conditions could read: its filters on config fields (and columns derived
    from them) applied, ``$max`` / ``$min`` over the whole target; a filter on anything else left open."""
    if not missing:
        return []
    frame, whole = config_frame(missing), config_frame(target)
    picked: set[int] = set()
    for cond in claim.conditions:
        groups = [cond.params[k] for k in ("a", "b", "where") if k in cond.params] or [None]
        for where in groups:
            known = {k: v for k, v in (where or {}).items() if k in FIELD_TYPES or k in CONFIG_COLUMNS}
            picked |= set(select(frame, resolve_extremes(known, whole)).index)
    return [missing[i] for i in sorted(picked)]


def seeds_text(seeds: list[Any]) -> str:
    """``0-4``, ``0, 2, 5-9``: a seed list in ranges."""
    nums = sorted(s for s in seeds if isinstance(s, int))
    parts, start = [], None
    for i, s in enumerate(nums):
        start = s if start is None else start
        if i + 1 == len(nums) or nums[i + 1] != s + 1:
            parts.append(f"{start}" if start == s else f"{start}-{s}")
            start = None
    return ", ".join(parts + [str(s) for s in seeds if not isinstance(s, int)])


def shown(value_text: str) -> str:
    """A value as :func:`bench.sweep.growth.value_key` wrote it, for reading: no quotes, ``none`` for null."""
    return "none" if value_text == "null" else value_text.strip('"')


def runs_text(runs: list[Trial], varying: list[str]) -> str:
    """``experts 5, 20 x importance_loss 0.0, 0.1 x seeds 0-4 (20 runs)``; configurations named where few."""
    by_config: dict[str, list[Trial]] = {}
    for t in runs:
        by_config.setdefault(t.name, []).append(t)
    by_seeds: dict[str, list[str]] = {}
    for name, ts in by_config.items():
        by_seeds.setdefault(seeds_text([t.config.get("seed") for t in ts]), []).append(name)
    parts = []
    for seeds, names in by_seeds.items():
        n = sum(len(by_config[c]) for c in names)
        if len(names) <= 3:
            what = ", ".join(f"`{c}`" for c in names)
        else:
            configs = [by_config[c][0].config for c in names]
            values = {f: list(dict.fromkeys(value_key(c.get(f)) for c in configs)) for f in varying}
            what = " x ".join(f"{f} {', '.join(shown(v) for v in vals)}" for f, vals in values.items()
                              if f != "seed" and vals) + f" ({len(names)} configurations)"
        parts.append(f"{what} x seeds {seeds} ({n} run{'s' if n != 1 else ''})")
    return "; ".join(parts)


def section(items: list[ToCome]) -> list[str]:
    """REPRODUCTION.md's closing section."""
    lines = ["## Runs still to come", "",
             "Generated from each sweep file's full grid (the papers' budget) and the runs its directory has finished "
             "(`bench/reproduce/to_come.py`); a claim waits for the missing runs its filters could read (a filter on "
             "a score, such as competence or experts alive, is known only once the run has finished). The verdicts "
             "above are what the finished runs give.", ""]
    for item in items:
        varying = [f for f in FIELD_TYPES if len({value_key(t.config.get(f)) for t in item.missing}) > 1]
        head = (f"- `{item.sweep}`: {item.target} has {item.total} runs, {item.done} finished here"
                + (f" (and {item.extra} finished runs outside it)" if item.extra else "")
                + (f"; {item.note}" if item.note else ""))
        if not item.missing:
            lines.append(head + "; none to come.")
            continue
        lines.append(head + f"; {len(item.missing)} to come: {runs_text(item.missing, varying)}.")
        for claim, runs in item.waits.items():
            lines.append(f"  - `{claim}` waits for: " + (runs_text(runs, varying) if runs else "nothing") + ".")
    return lines + [""]

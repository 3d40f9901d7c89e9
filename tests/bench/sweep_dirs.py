"""Sweep directories made without Ray for the report and comparison tests: each trial of a small sweep file
run by ``moe.training.loop.run`` in this process, its record written where ``bench.sweep`` writes it.

Each configuration trains once per test session (``trained``): the same seed gives the same record on the CPU,
so the report, table, comparison and figure tests share one copy of each record instead of training it again."""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import moe.training.loop
from bench.sweep import spec
from bench.sweep.layout import SweepDir

# 2 configurations x 2 seeds, 3 epochs on a gm6 subset: well under a second a run.
TINY: dict[str, Any] = {"description": "report test sweep", "version": 1, "dataset": "gm6",
                        "budget": {"epochs": 3, "n_train": 240, "n_test": 120},
                        "grid": {"router": ["softmax", "prototype"], "experts": [3], "seed": [0, 1]}}


_TRAINED: dict[str, dict[str, Any]] = {}


def trained(config: dict[str, Any]) -> dict[str, Any]:
    """The record of ``moe.training.loop.run(config)``, trained on the first call of the session; a deep copy
    each time (a test may edit it)."""
    key = json.dumps(config, sort_keys=True, default=repr)
    if key not in _TRAINED:
        _TRAINED[key] = moe.training.loop.run(copy.deepcopy(config))
    return copy.deepcopy(_TRAINED[key])


def make_sweep_dir(root: Path, data: dict[str, Any] | None = None, name: str = "tiny",
                   edit=None) -> Path:
    """Write sweep.json and one record per trial into ``root``; ``edit(record)`` may change each record."""
    sweep = spec.from_mapping(data or TINY, name=name)
    trials = sweep.trials()
    folder = SweepDir(root)
    root.mkdir(parents=True, exist_ok=True)
    folder.write_meta(sweep, trials)
    for t in trials:
        rec = trained(t.config)
        rec["bench"] = {"index": t.index, "name": t.name, "trial_s": 0.5}
        if edit is not None:
            edit(rec)
        folder.write_record(t.index, rec)
    return root

"""Sweep directories made without Ray for the report and comparison tests: each trial of a small sweep file
run by ``moe.training.loop.run`` in this process, its record written where ``bench.sweep`` writes it."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import moe.training.loop
from bench.sweep import spec
from bench.sweep.layout import SweepDir

# 2 configurations x 2 seeds, 3 epochs on a gm6 subset: well under a second a run.
TINY: dict[str, Any] = {"description": "report test sweep", "version": 1, "dataset": "gm6",
                        "budget": {"epochs": 3, "n_train": 240, "n_test": 120},
                        "grid": {"router": ["softmax", "prototype"], "experts": [3], "seed": [0, 1]}}


def make_sweep_dir(root: Path, data: dict[str, Any] | None = None, name: str = "tiny",
                   edit=None) -> Path:
    """Write sweep.json and one record per trial into ``root``; ``edit(record)`` may change each record."""
    sweep = spec.from_mapping(data or TINY, name=name)
    trials = sweep.trials()
    folder = SweepDir(root)
    root.mkdir(parents=True, exist_ok=True)
    folder.write_meta(sweep, trials)
    for t in trials:
        rec = moe.training.loop.run(t.config)
        rec["bench"] = {"index": t.index, "name": t.name, "trial_s": 0.5}
        if edit is not None:
            edit(rec)
        folder.write_record(t.index, rec)
    return root

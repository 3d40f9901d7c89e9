"""What a reproduction produced: each sweep's result and the verdicts (the runner fills them, the report
writer and ``reproduction.json`` read them)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from bench.reproduce.engine import NOT_RUN, Verdict

BUDGET_WORDS = {"paper": "the papers' settings (the sweep files as they are)",
                "small": "subsets, fewer epochs and seeds",
                "seed": "the seed code's own settings, splits and run counts (yamsgithub/modular_deep_learning; the "
                        "cheating and expert-count sweeps, which it lacks, at their small budget)"}


class ReproduceError(ValueError):
    """A bad claim name, budget or output directory: one line, with the valid choices."""


@dataclass
class SweepResult:
    name: str
    runs: pd.DataFrame | None  # None: the sweep did not run
    reason: str = ""  # why it did not run
    overrides: dict[str, Any] = field(default_factory=dict)
    wall_s: float = 0.0
    interrupted: bool = False
    trial_s: float = 0.0  # sum of the trial times of this call (0 when every trial had run before)
    slots: int = 0  # trials run at once
    figures: list[tuple[str, Path]] = field(default_factory=list)
    figure_errors: list[str] = field(default_factory=list)
    description: str = ""
    version: int | None = None
    notes: list[str] = field(default_factory=list)  # what the runner changed to fit the data (runner.fit_to_data)
    partial: str = ""  # --report-only --partial: what the directory lacks (its finished runs were judged)
    planned: pd.DataFrame | None = None  # the configs of every run the budget plans ($max / $min resolve over them)


@dataclass
class Reproduction:
    out: Path
    budget: str
    results: dict[str, SweepResult]
    verdicts: list[Verdict]
    wall_s: float
    data_root: str | None
    controls: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)  # dataset -> moe.training.controls results
    # reproduction.json's entries of the sweeps an earlier call ran and this one did not (kept for the next call)
    earlier: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def exit_status(self) -> int:
        if any(r.interrupted for r in self.results.values()):
            return 130
        return 1 if any(v.status == NOT_RUN for v in self.verdicts) else 0

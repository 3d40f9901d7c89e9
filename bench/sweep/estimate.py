"""What a sweep asks for before it runs: its trial count per budget, the data files it needs (and whether they are
under a data root), and an estimate of its CPU time from a per-trial model.

The per-trial model, in seconds of one core (a sweep's trials run one per core):

    t = START + sum over the training phases of epochs x n x COST[inputs, gate, expert] x (1 + E / WIDTH)

- ``START`` (3 s): a trial's set-up, data loading, final scores and record;
- ``n``: the training samples of an epoch, ``n_train`` (or the dataset's whole training split) less the validation
  share; a pretrain phase counts the same ``n`` (each expert sees its classes once);
- ``COST``: microseconds per training sample, by the inputs (2-D points or 28 x 28 images) plus the gate's and
  the experts' extra where they are convolutional (per expert: every expert sees every sample under soft routing);
- ``E / WIDTH``: the cost of many experts (routing, ablation of each expert at the end, their parameters).

A text dataset's language model instead: ``TEXT_START_S`` + bytes trained x ``TEXT_TRAIN_US`` + bytes evaluated
with each expert of each layer removed (the causal score) x ``TEXT_EVAL_US``.

A sweep's wall time on ``cores`` cores adds to the trials' share of each core its fixed costs: ``SWEEP_S`` (Ray's
start and stop, the tables) and ``FIGURES_S`` per configuration (the report's drill-down figures).

The constants were fitted by eye to the trial times recorded in this repository's reference runs (``docs/``) on
a 2-core machine shared with other work; ``tests/bench/sweep/test_estimate.py`` checks the model against every
one of those sweeps (within a factor of 2 of the recorded total). Treat an estimate as its order of magnitude,
for cores not shared with other work: on cores shared with several other processes, trials take several times longer.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.sweep import spec
from moe.config import TEXT_DATASETS
from moe.data.mnist import RAW_FILES
from moe.training.lm_loop import CAUSAL_WINDOWS
from moe.regimes import phases
from moe.validate import from_dict

START_S = 1.0
SWEEP_S = 20.0
FIGURES_S = 0.7
WIDTH = 24.0
TRAIN_SIZE = {"gm6": 2_400, "planted": 4_000, "mnist": 60_000, "fmnist": 60_000, "fmnist_mnist": 71_000}
FOLDERS = {"mnist": ("MNIST",), "fmnist": ("FashionMNIST",), "fmnist_mnist": ("FashionMNIST", "MNIST")}
INPUT_US = {"points": 40.0, "images": 150.0}  # linear / mlp gate, linear experts
GATE_US = {"cnn": 650.0, "lenet": 200.0, "seed_cnn": 60.0, "seed_cnn5": 80.0}  # images only
EXPERT_US = {"cnn": 25.0, "seed_cnn": 20.0}  # per expert
# The language model (text datasets): its start (loading the text, the final analyses), microseconds per trained
# byte, and per byte evaluated with one expert removed (the causal score: every expert of every layer)
TEXT_START_S, TEXT_TRAIN_US, TEXT_EVAL_US, TEXT_WINDOWS = 8.0, 100.0, 100.0, 20_000


@dataclass
class Cost:
    trials: int
    configurations: int
    cpu_s: float
    datasets: tuple[str, ...]

    def wall_s(self, cores: int) -> float:
        return self.cpu_s / max(1, min(cores, self.trials)) + SWEEP_S + FIGURES_S * self.configurations


def trial_seconds(config: dict[str, Any]) -> float:
    """The model's seconds of one core for one trial (its config as a sweep gives it)."""
    cfg = from_dict(dict(config), validate=False)  # types and presets only: the model reads no rule
    if cfg.dataset in TEXT_DATASETS:  # the language model: bytes trained, and the causal score's evaluations
        trained = (cfg.n_train or TEXT_WINDOWS) * cfg.context * cfg.epochs
        removed = cfg.lm_layers * cfg.experts * min(cfg.n_test or TEXT_WINDOWS, CAUSAL_WINDOWS) * cfg.context
        return TEXT_START_S + trained * TEXT_TRAIN_US * 1e-6 + removed * TEXT_EVAL_US * 1e-6
    images = cfg.dataset in FOLDERS
    n = (cfg.n_train or TRAIN_SIZE.get(cfg.dataset, 10_000)) * (1 - cfg.val_fraction)
    us = INPUT_US["images" if images else "points"]
    if images:
        us += GATE_US.get(cfg.gate, 0.0) + EXPERT_US.get(cfg.expert, 0.0) * cfg.experts
    epochs = sum(p.epochs for p in phases(cfg))
    return START_S + epochs * n * us * 1e-6 * (1 + cfg.experts / WIDTH)


def cost(sweep: spec.Sweep) -> Cost:
    trials = sweep.trials()  # not validated (a sweep's run does that, building every model): a listing stays quick
    datasets = tuple(sorted({t.config.get("dataset", sweep.dataset) for t in trials}))
    return Cost(len(trials), len({t.name for t in trials}), sum(trial_seconds(t.config) for t in trials), datasets)


def data_status(datasets: tuple[str, ...], root: Path) -> str:
    """'-' for generated data; else each file folder the datasets read, present or missing under ``root``."""
    folders = sorted({f for d in datasets for f in FOLDERS.get(d, ())})
    if not folders:
        return "generated"
    return ", ".join(f"{f} {'present' if all((root / f / 'raw' / n).is_file() for n in RAW_FILES) else 'MISSING'}"
                     for f in folders)


def duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def cores() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)

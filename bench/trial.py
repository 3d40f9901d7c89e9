"""One sweep trial inside a Ray Tune worker: ``moe.train.run`` with a ``tune.report`` after every epoch.

The trainable gets ``config = {"trial": Trial.to_dict()}`` and, through ``tune.with_parameters``, the
datasets the driver loaded once (``Dataset.to_numpy()`` dicts, read zero-copy from the object store).
Its last report carries the whole run record as JSON (``record_json``): the driver writes it to the
results directory, so nothing depends on files written on a worker node.

``moe.train`` is imported at module import, i.e. once per worker process: with reused actors, a trial
does not pay a fresh torch import.
"""
from __future__ import annotations

import json
import math
import os
import time
from typing import Any

import numpy as np

import moe.train
from moe.record import jsonable

EPOCH_KEYS = ("epoch", "train_loss", "train_accuracy", "test_accuracy", "epoch_s")
FAULTS = ("raise", "diverge")


class InjectedFault(RuntimeError):
    """Raised by a trial marked ``fault: raise`` (tests of retries and error rows)."""


def dataset_key(config: dict[str, Any]) -> str:
    """Which loaded dataset a trial config needs: name, data root and data seed (the subsets are the run's job)."""
    return f"{config.get('dataset', 'gm6')}|{config.get('data_root') or ''}|{config.get('data_seed', 0)}"


def poisoned(data: dict[str, Any]) -> dict[str, Any]:
    """A copy of the dataset whose training inputs are NaN: the gate's logits become NaN, the run diverges."""
    return {**data, "x_train": np.full_like(data["x_train"], np.nan)}


def cpu_share() -> float:
    """The CPUs Ray gave this trial (1 outside Tune)."""
    from ray import tune

    try:
        return float(tune.get_context().get_trial_resources().required_resources.get("CPU", 1))
    except Exception:  # not inside a Tune trial
        return 1.0


def node_id() -> str | None:
    try:
        import ray

        return ray.get_runtime_context().get_node_id()
    except Exception:
        return None


def trainable(config: dict[str, Any], datasets: dict[str, dict[str, Any]] | None = None) -> None:
    """Ray Tune function trainable: one run record per trial, one report per epoch plus a final one."""
    from ray import tune

    started, started_at = time.perf_counter(), time.time()
    trial = config["trial"]
    cfg = dict(trial["config"])
    if cfg.get("threads") is None:  # torch threads = the trial's CPU share
        cfg["threads"] = max(1, math.floor(cpu_share()))
    data = (datasets or {}).get(dataset_key(cfg))
    fault = trial.get("fault")
    if fault == "raise":
        raise InjectedFault(f"injected fault in trial {trial['index']} ({trial['name']})")
    if fault == "diverge" and data is not None:
        data = poisoned(data)

    def on_epoch(metrics: dict[str, Any]) -> bool:
        tune.report({k: metrics[k] for k in EPOCH_KEYS if k in metrics})
        return False

    record = moe.train.run(cfg, data=data, on_epoch=on_epoch)
    record["bench"] = {"index": trial["index"], "name": trial["name"], "trial_s": time.perf_counter() - started,
                       "started_at": started_at, "ended_at": time.time(), "node_id": node_id(), "pid": os.getpid()}
    # no "epoch" key: ASHA (time_attr epoch) leaves the final report alone
    tune.report({"final": True, "status": record["status"], "test_accuracy": record["test"].get("accuracy", math.nan),
                 "trial_s": record["bench"]["trial_s"], "record_json": json.dumps(jsonable(record))})

"""One sweep trial inside a Ray Tune worker: ``moe.training.loop.run`` with a ``tune.report`` after every epoch.

The trainable gets ``config = {"trial": Trial.to_dict()}`` and, through ``tune.with_parameters``, the
datasets the driver loaded once (``Dataset.to_numpy()`` dicts, read zero-copy from the object store).
Its last report carries the whole run record as JSON (``record_json``): the driver writes it to the
results directory, so nothing depends on files written on a worker node.

Checkpoints: every epoch's report carries the run's whole training state (``moe.training.loop.TrainState``, one
file ``state.pt``; Ray keeps the latest per trial). A trial starts from ``tune.get_checkpoint()`` when
Tune retries it after a failure, else from the state a ``--resume`` driver found in an earlier
experiment directory (``resume_states``), else from epoch 0; its record then says ``resumed_from_epoch``.
On a multi-node cluster whose storage path is not shared, Ray cannot store checkpoints from other
nodes: the trial then reports without them (and says so in ``bench.checkpoints``).

``moe.training.loop`` is imported at module import, i.e. once per worker process: with reused actors, a trial
does not pay a fresh torch import. Ray is imported inside the functions that need it: the driver
imports this module to list and validate sweeps without starting Ray.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

import moe.training.stacked
import moe.training.loop
from bench.sweep.layout import STATE_FILE
from moe.training.checkpoint import StateMismatch
from moe.config import Config, ConfigError, preset_values
from moe.data import dataset_options
from moe.records.record import atomic_write_bytes, error_record, jsonable
from moe.routers import NonFiniteError
from moe.validate import from_dict

EPOCH_KEYS = ("epoch", "train_loss", "train_accuracy", "val_accuracy", "val_loss", "epoch_s")  # no test score: the end's only
CRASH_AFTER = "crash_after_epoch_"  # test hook: crash_after_epoch_K
FAULTS = ("raise", "diverge", "diverge_in_eval", f"{CRASH_AFTER}K")


class InjectedFault(RuntimeError):
    """Raised by a trial marked ``fault: raise`` or ``crash_after_epoch_K`` (tests of retries and error rows)."""


def crash_epoch(fault: str | None) -> int | None:
    """K of the test hook ``crash_after_epoch_K``: a trial started from scratch raises once epoch K's
    checkpoint is reported (a retry resumes from that checkpoint and runs on). None for any other fault."""
    if not fault or not fault.startswith(CRASH_AFTER) or not fault[len(CRASH_AFTER):].isdigit():
        return None
    return int(fault[len(CRASH_AFTER):])


def is_fault(kind: str) -> bool:
    return kind in FAULTS[:3] or crash_epoch(kind) is not None


def with_preset(config: dict[str, Any]) -> dict[str, Any]:
    """A trial config with its preset's fields under its own (what the run will use for the fields it sets)."""
    return {**preset_values(config.get("preset")), **config}


def data_source(config: dict[str, Any]) -> tuple[str, str | None, int]:
    """(dataset, data root, data seed) of a trial config, its preset's values under its own, else the defaults."""
    c = with_preset(config)
    defaults = Config()
    return c.get("dataset", defaults.dataset), c.get("data_root"), c.get("data_seed", defaults.data_seed)


def dataset_key(config: dict[str, Any]) -> str:
    """Which loaded dataset a trial config needs: name, data root and data seed (the subsets are the run's job)."""
    name, root, seed = data_source(config)
    options = dataset_options(name, with_preset(config))  # a generated dataset's knobs (planted), else none
    return f"{name}|{root or ''}|{seed}" + "".join(f"|{k}={v}" for k, v in options.items())


def poisoned(data: dict[str, Any], split: str = "train") -> dict[str, Any]:
    """A copy of the dataset whose training (or test) inputs are NaN: the gate's logits become NaN, the run
    diverges (in training, or where it is evaluated)."""
    return {**data, f"x_{split}": np.full_like(data[f"x_{split}"], np.nan)}


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


def read_checkpoint(checkpoint) -> bytes:
    with checkpoint.as_directory() as folder:
        return (Path(folder) / STATE_FILE).read_bytes()


def saved_state(index: int, resume_states: dict[int, Any] | None) -> tuple[bytes | None, str | None]:
    """(state bytes, where from): Tune's checkpoint of this trial (a retry), else one found by ``--resume``."""
    from ray import tune

    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        return read_checkpoint(checkpoint), "retry"
    ref = (resume_states or {}).get(index)
    if ref is None:
        return None, None
    import ray

    return ray.get(ref), "resume"


STATE_PREFIX = "moe-state-"  # the temporary folder of a reported state: moe-state-<pid>-<random>


def remove_stale_state_folders(root: str | os.PathLike | None = None) -> list[Path]:
    """Remove the temporary state folders (``STATE_PREFIX``, under ``root``, default the system's temporary
    directory) of trial processes that are gone: a trial killed while it reported could not remove its own.
    Folders of live processes (this one's included) are kept. Returns the folders removed."""
    removed = []
    for folder in Path(root or tempfile.gettempdir()).glob(f"{STATE_PREFIX}*-*"):
        pid = folder.name[len(STATE_PREFIX):].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


class EpochReporter:
    """One ``tune.report`` per epoch, carrying the state ``moe.training.loop.run`` saved just before (``on_state``)."""

    def __init__(self):
        self.state: bytes | None = None
        self.checkpoints = "on"
        remove_stale_state_folders()  # once per trial: what killed trials left behind

    def keep(self, state: bytes) -> None:
        self.state = state

    def report(self, metrics: dict[str, Any]) -> None:
        from ray import tune

        metrics = {k: metrics[k] for k in EPOCH_KEYS if k in metrics}
        state, self.state = self.state, None
        if state is None or self.checkpoints != "on":
            tune.report(metrics)
            return
        try:
            with tempfile.TemporaryDirectory(prefix=f"{STATE_PREFIX}{os.getpid()}-") as folder:  # report copies it to the storage path
                atomic_write_bytes(Path(folder) / STATE_FILE, state)
                tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))
        except RuntimeError as err:
            if "cluster storage" not in str(err):
                raise
            # a local storage path on a multi-node cluster: this node cannot write there; go on without checkpoints
            self.checkpoints = "off: the storage path is not shared with this node"
            print(f"warning: no checkpoints for this trial: {self.checkpoints}", file=sys.stderr)
            tune.report(metrics)


def _train(index: int, cfg: dict[str, Any], data, on_epoch, state: bytes | None, state_from: str | None,
           reporter: EpochReporter) -> tuple[dict[str, Any], str | None]:
    """(the record of ``moe.training.loop.run`` from ``state``, where that state came from): a resume state saved
    under another config is dropped and the run starts afresh."""
    try:
        record = moe.training.loop.run(cfg, data=data, on_epoch=on_epoch, state=state, on_state=reporter.keep)
    except StateMismatch as err:
        if state_from != "resume":
            raise
        # a state an earlier run left under another config (the trial's CPU share changed its threads): start afresh
        print(f"warning: trial {index}: not resuming: {err}", file=sys.stderr)
        state_from = None
        record = moe.training.loop.run(cfg, data=data, on_epoch=on_epoch, on_state=reporter.keep)
    return record, state_from


def diverged_record(cfg: dict[str, Any], err: BaseException, history: list[dict[str, Any]]) -> dict[str, Any]:
    """The record of a trial whose run raised on a non-finite value: ``diverged`` (not ``error``), with the
    epochs it finished and the message."""
    try:
        config = from_dict(cfg).to_dict()
    except ConfigError:
        config = dict(cfg)
    return error_record(config, err, "diverged", history)


def trainable(config: dict[str, Any], datasets: dict[str, dict[str, Any]] | None = None,
              resume_states: dict[int, Any] | None = None) -> None:
    """Ray Tune function trainable: one run record per trial, one report (with a checkpoint) per epoch plus
    a final one. ``resume_states``: trial index -> object ref of the latest state an earlier run of the
    sweep left (``bench.sweep.runner`` finds them on ``--resume``)."""
    from ray import tune

    started, started_at = time.perf_counter(), time.time()
    trial = config["trial"]
    if "members" in trial:  # a seed group (bench.sweep.groups): its seeds trained as one stacked model
        return seed_group(trial, datasets, started, started_at)
    cfg = dict(trial["config"])
    if cfg.get("threads") is None:  # torch threads = the trial's CPU share
        cfg["threads"] = max(1, math.floor(cpu_share()))
    data = (datasets or {}).get(dataset_key(cfg))
    fault = trial.get("fault")
    if fault == "raise":
        raise InjectedFault(f"injected fault in trial {trial['index']} ({trial['name']})")
    if fault in ("diverge", "diverge_in_eval") and data is not None:
        data = poisoned(data, "train" if fault == "diverge" else "test")
    state, state_from = saved_state(trial["index"], resume_states)
    reporter = EpochReporter()

    history: list[dict[str, Any]] = []  # what each finished epoch reported (kept by a run that then diverges)

    def on_epoch(metrics: dict[str, Any]) -> bool:
        history.append(metrics)
        reporter.report(metrics)
        if state is None and metrics["epoch"] == crash_epoch(fault):
            raise InjectedFault(f"injected crash after epoch {metrics['epoch']} in trial {trial['index']} ({trial['name']})")
        return False

    try:
        record, state_from = _train(trial["index"], cfg, data, on_epoch, state, state_from, reporter)
    except NonFiniteError as err:  # NaN or inf met outside the loss (a gate, an evaluation): the run diverged
        record = diverged_record(cfg, err, history)
    record["bench"] = {"index": trial["index"], "name": trial["name"], "trial_s": time.perf_counter() - started,
                       "started_at": started_at, "ended_at": time.time(), "node_id": node_id(), "pid": os.getpid(),
                       "resumed_by": state_from, "checkpoints": reporter.checkpoints}
    # no "epoch" key: ASHA (time_attr epoch) leaves the final report alone
    val = record.get("validation") or {}
    tune.report({"final": True, "status": record["status"], "val_accuracy": val.get("accuracy", math.nan),
                 "test_accuracy": record["test"].get("accuracy", math.nan),
                 "trial_s": record["bench"]["trial_s"], "record_json": json.dumps(jsonable(record))})


def seed_group(trial: dict[str, Any], datasets: dict[str, dict[str, Any]] | None, started: float, started_at: float) -> None:
    """A seed group's trials trained together by ``moe.training.stacked.train_stacked``; one final report carrying every
    member's record (``records_json``). ``bench.trial_s`` of a member is the group's time over its seeds."""
    from ray import tune

    members = trial["members"]
    cfg = {k: v for k, v in members[0]["config"].items() if k != "seed"}
    if cfg.get("threads") is None:
        cfg["threads"] = max(1, math.floor(cpu_share()))
    seeds = [m["config"].get("seed", Config().seed) for m in members]
    records = moe.training.stacked.train_stacked(cfg, seeds, data=(datasets or {}).get(dataset_key(cfg)))
    took = time.perf_counter() - started
    for m, record in zip(members, records):
        record["bench"] = {"index": m["index"], "name": m["name"], "trial_s": took / len(members), "group_s": took,
                           "group": [x["index"] for x in members], "started_at": started_at, "ended_at": time.time(),
                           "node_id": node_id(), "pid": os.getpid(), "resumed_by": None, "checkpoints": "off: seed group"}
    accuracies = [r["test"].get("accuracy", math.nan) for r in records]
    tune.report({"final": True, "status": ",".join(sorted({r["status"] for r in records})),
                 "test_accuracy": float(np.nanmean(accuracies)) if not all(map(math.isnan, accuracies)) else math.nan,
                 "trial_s": took, "records_json": json.dumps([jsonable(r) for r in records])})

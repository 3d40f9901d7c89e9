"""The record of a trial a scheduler stopped (``bench.sweep.progress.stopped_trial_record``), built by the driver from
the trial's latest checkpoint: scored like an ``ok`` run, or, when the checkpoint is missing or unreadable,
written anyway with its last accuracy and the reason. No Ray cluster: a ``tune.Checkpoint`` is a directory."""
from __future__ import annotations

import math

import pytest

from bench.sweep.layout import STATE_FILE
from bench.sweep.progress import stopped_trial_record
from bench.sweep.spec import Trial
from bench.table.runs import record_row
from moe.data import load_dataset
from moe.training.loop import run

CONFIG = {"dataset": "gm6", "n_train": 240, "n_test": 120, "epochs": 4, "router": "topk", "top_k": 2, "experts": 3}
TRIAL = Trial(index=7, name="topk[k=2,experts=3]", config=CONFIG)


@pytest.fixture(scope="module")
def gm6():
    return load_dataset("gm6")


def checkpoint_of(folder, state: bytes):
    from ray import tune

    folder.mkdir()
    (folder / STATE_FILE).write_bytes(state)
    return tune.Checkpoint.from_directory(str(folder))


@pytest.mark.slow  # trains and stops a trial
def test_a_stopped_trial_is_scored_from_its_latest_checkpoint(gm6, tmp_path):
    threaded = {**CONFIG, "threads": 1}  # as bench.sweep.trial runs it: threads from its CPU share
    states = []
    run(threaded, data=gm6, on_state=states.append)
    after_2 = run(threaded, data=gm6, on_epoch=lambda m: m["epoch"] == 2)  # the run the scheduler cut after epoch 2
    last = {"epoch": 2, "val_accuracy": after_2["history"][-1]["val_accuracy"]}

    rec = stopped_trial_record(TRIAL, last, checkpoint_of(tmp_path / "c", states[1]), {"gm6||0": gm6.to_numpy()})
    assert rec["status"] == "stopped" and rec["error"] is None
    assert rec["bench"] == {"index": 7, "name": TRIAL.name, "trial_s": None, "epochs_run": 2, "scored_from_epoch": 2}
    for field in ("config", "dataset", "test", "validation", "allocation", "test_assignment"):
        assert rec[field] == after_2[field], field
    assert [h["epoch"] for h in rec["history"]] == [1, 2] and rec["timing"]["eval_s"] >= 0
    row = record_row(rec)  # the runs.csv row: every score, like an ok row
    assert row["nmi"] == after_2["test"]["nmi"] and row["threads"] == 1 and row["epochs_run"] == 2
    assert row["val_accuracy"] == after_2["validation"]["accuracy"] and row["val_nmi"] == after_2["validation"]["nmi"]
    assert row["allocation"] is not None


@pytest.mark.parametrize("why", ["no checkpoint", "corrupt", "another config"])
def test_a_stopped_trial_whose_checkpoint_cannot_be_scored_keeps_its_record(gm6, tmp_path, why):
    states = []
    run({**CONFIG, "epochs": 1, "experts": 2}, data=gm6, on_state=states.append)  # not TRIAL's config: 2 experts
    if why == "no checkpoint":  # e.g. a node that could not write to the storage path
        checkpoint = None
    else:
        checkpoint = checkpoint_of(tmp_path / "c", states[0][:100] if why == "corrupt" else states[0])
    rec = stopped_trial_record(TRIAL, {"epoch": 1, "val_accuracy": 0.5}, checkpoint, None)
    assert rec["status"] == "stopped" and rec["validation"] == {"accuracy": 0.5} and rec["allocation"] is None
    assert rec["test"] == {}  # never scored on the test split: the per-epoch reports carry no test score
    assert rec["bench"]["scored_from_epoch"] is None and rec["bench"]["epochs_run"] == 1
    reason = {"no checkpoint": "FileNotFoundError: the trial left no checkpoint",
              "corrupt": "StateMismatch: state: cannot read it", "another config": "StateMismatch: state: written by a run of another config"}[why]
    assert rec["bench"]["not_scored"].startswith(reason)
    assert math.isnan(record_row(rec).get("nmi", math.nan))


def test_a_stopped_record_carries_the_provenance_of_an_ok_one(gm6, tmp_path):
    states = []
    ok = run({**CONFIG, "threads": 1}, data=gm6, on_state=states.append)
    rec = stopped_trial_record(TRIAL, {"epoch": 2}, checkpoint_of(tmp_path / "c", states[1]), {"gm6||0": gm6.to_numpy()})
    for key in ("git", "data_sha256", "kernel_backend", "device"):
        assert rec["provenance"][key] == ok["provenance"][key], key  # the same data, as the run prepared it
    unscored = stopped_trial_record(TRIAL, {"epoch": 1}, None, None)
    assert unscored["provenance"]["git"] == ok["provenance"]["git"] and "started_at" in unscored["provenance"]

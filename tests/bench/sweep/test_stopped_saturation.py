"""The record of a trial a scheduler stopped carries the routing dynamics of the run cut at its checkpoint's
epoch (the per-epoch expert sets travel in the training state). No Ray cluster."""
from __future__ import annotations

from bench.sweep.layout import STATE_FILE
from bench.sweep.progress import stopped_trial_record
from bench.sweep.spec import Trial
from moe.data import load_dataset
from moe.training.loop import run

CONFIG = {"dataset": "gm6", "n_train": 240, "n_test": 120, "epochs": 4, "router": "softmax", "experts": 3, "lr": 0.05,
          "threads": 1}


def checkpoint_of(folder, state: bytes):
    from ray import tune

    folder.mkdir()
    (folder / STATE_FILE).write_bytes(state)
    return tune.Checkpoint.from_directory(str(folder))


def test_a_stopped_trial_has_the_dynamics_of_the_run_cut_at_its_epoch(tmp_path):
    gm6 = load_dataset("gm6")
    states = []
    full = run(CONFIG, data=gm6, on_state=states.append)
    after_3 = run(CONFIG, data=gm6, on_epoch=lambda m: m["epoch"] == 3)
    rec = stopped_trial_record(Trial(index=1, name="softmax[experts=3]", config=CONFIG), {"epoch": 3},
                         checkpoint_of(tmp_path / "c", states[2]), {"gm6||0": gm6.to_numpy()})
    assert rec["bench"]["scored_from_epoch"] == 3
    assert rec["routing_dynamics"] == after_3["routing_dynamics"] and rec["routing_dynamics"]["reference_epoch"] == 3
    assert rec["routing_dynamics"] != full["routing_dynamics"]  # the reference is the last epoch run

"""``--scheduler asha`` stops trials on their validation accuracy, never on a test score; a sweep with a trial
that has no validation split is refused before anything runs. No Ray cluster: the scheduler is only built."""
from __future__ import annotations

import pytest

from bench import pipeline
from bench.sweep import runner
from bench.sweep.spec import SweepError, Trial
from bench.sweep.trial import EPOCH_KEYS

TRIALS = [Trial(index=0, name="softmax[experts=2]", config={"router": "softmax", "experts": 2, "epochs": 8}),
          Trial(index=1, name="softmax[experts=4]", config={"router": "softmax", "experts": 4, "epochs": 8})]


def test_asha_stops_on_the_validation_accuracy():
    scheduler = runner._scheduler("asha", TRIALS)
    assert scheduler._metric == "val_accuracy" == runner.SCHEDULER_METRIC and scheduler._mode == "max"
    assert runner._scheduler("fifo", TRIALS) is None and runner._scheduler(None, TRIALS) is None


@pytest.mark.parametrize("epochs,rungs", [(4, [2, 1]), (8, [4, 2]), (20, [10, 5])])
def test_asha_has_no_rung_at_the_last_epoch(epochs, rungs):
    """A cut at the last epoch saves nothing and would mark a run that finished its training 'stopped'."""
    trials = [Trial(index=0, name="t", config={"epochs": epochs})]
    bracket, = runner._scheduler("asha", trials)._brackets
    assert [milestone for milestone, _ in bracket._rungs] == rungs


def test_the_epoch_reports_carry_validation_scores_and_no_test_score():
    assert {"epoch", "val_accuracy", "val_loss"} <= set(EPOCH_KEYS)
    assert not any(k.startswith("test") for k in EPOCH_KEYS)


def test_asha_refuses_trials_without_a_validation_split():
    bare = [TRIALS[0], Trial(index=1, name="softmax[experts=4]", config={"experts": 4, "val_fraction": 0})]
    with pytest.raises(SweepError, match=r"--scheduler asha: .*val_accuracy.*trial\(s\) 1 \(softmax\[experts=4\]\) "
                                         r"have val_fraction 0.*--scheduler fifo"):
        runner._scheduler("asha", bare)
    runner.check_scheduler("fifo", bare)  # without ASHA nothing needs a validation split
    runner.check_scheduler("asha", [Trial(index=0, name="p", config={"preset": "seed_gm6", "val_fraction": 0.2})])


def test_a_sweep_with_asha_and_no_validation_split_is_refused_before_anything_is_written(sweep_file, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(SweepError, match="have val_fraction 0"):
        pipeline.run_sweep(sweep_file(), out=out, scheduler="asha", quiet=True, val_fraction=0)
    assert not out.exists()

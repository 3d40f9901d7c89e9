"""The controls of the cheating scores in the reproduction: computed once per output directory beside the
cheating sweep (gm6 and the sweep's own dataset), kept in controls.json, shown before the cheating verdicts;
and the total CPU time in the report's head, summed from every run's trial time."""
from __future__ import annotations

import json
import math

import pytest

from bench.reproduce import runner, verdict_page
from bench.reproduce.results import Reproduction, SweepResult
from runs_frames import frame, run_row
from tests.helpers import make_fake_mnist


@pytest.mark.slow  # trains the three controls on two datasets
def test_controls_are_computed_once_kept_and_reported(tmp_path, monkeypatch):
    make_fake_mnist(tmp_path / "data", "MNIST", n_train_per_class=10, n_test_per_class=4)
    runs = frame([run_row(0, "linear[experts=1]", experts=1, accuracy=0.9, trial_s=12.5),
                  run_row(1, "linear[experts=1]", experts=1, accuracy=0.9, trial_s=30.0)])
    results = {"cheating": SweepResult("cheating", runs)}
    plans = {"cheating": {"n_train": 100, "n_test": 40}}
    found = runner.controls_for(results, plans, tmp_path, str(tmp_path / "data"), quiet=True)
    assert set(found) == {"gm6", "mnist"} and set(found["gm6"]) == {"cheater", "hash", "collapsed"}
    assert found["gm6"]["cheater"]["cheating_index"] > 0.9  # the positive control cheats
    assert found["gm6"]["hash"]["cheating_index"] < 0.3  # the negative control does not
    assert math.isnan(found["gm6"]["collapsed"]["cheating_index"])  # a collapsed router: undefined
    assert (tmp_path / runner.CONTROLS_FILE).is_file()

    def boom(*a, **k):
        raise AssertionError("the controls were computed again")
    monkeypatch.setattr(runner, "run_controls", boom)
    again = runner.controls_for(results, plans, tmp_path, str(tmp_path / "data"), quiet=True)
    assert json.dumps(again, sort_keys=True) == json.dumps(found, sort_keys=True)  # read back, NaN included
    assert runner.controls_for({"cheating": SweepResult("cheating", None)}, plans, tmp_path, None) == {}

    rep = Reproduction(tmp_path, "small", results, [], 60.0, None, controls=found)
    text = verdict_page.render(rep)
    assert "## Controls of the cheating scores" in text and "**gm6**" in text and "**mnist**" in text
    assert text.index("## Controls of the cheating scores") < text.index("## cheating")
    assert "total CPU time 0:42" in text  # 12.5 s + 30.0 s of trial time

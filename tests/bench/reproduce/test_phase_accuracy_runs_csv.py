"""``accuracy_after_<phase>`` in runs.csv (``bench.table.runs.phase_accuracy``, scores registered in
``moe.scoring.scores``): a published directory keeps runs.csv without its records, and the claims that compare the
accuracy at the end of the joint phase (``*.no_accuracy_advantage``) are judged from it by ``--report-only``."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from bench.reproduce import cli, runner
from bench.sweep import spec
from bench.sweep.layout import SweepDir
from bench.table.runs import phase_accuracy, record_row, runs_frame
from moe import regimes
from moe.scoring.scores import PHASES, SCORES
from moe.validate import from_dict


def history(*phases_and_accuracies):
    return [{"epoch": i + 1, "phase": p, "val_accuracy": a} for i, (p, a) in enumerate(phases_and_accuracies)]


def test_the_last_epoch_of_each_phase_gives_its_column():
    rec = {"history": history(("pretrain", 0.5), ("joint", 0.6), ("joint", 0.7), ("experts", 0.9))}
    assert phase_accuracy(rec) == {"accuracy_after_pretrain": 0.5, "accuracy_after_joint": 0.7,
                                   "accuracy_after_experts": 0.9}
    assert phase_accuracy({"history": history(("joint", 0.6), ("joint", 0.8))}) == {}  # one phase: val_accuracy says it
    no_val = phase_accuracy({"history": [{"phase": "joint"}, {"phase": "experts", "train_loss": 1.0}]})
    assert set(no_val) == {"accuracy_after_joint", "accuracy_after_experts"} and all(map(math.isnan, no_val.values()))
    row = record_row({"status": "ok", "bench": {"index": 3}, "config": {}, "history": rec["history"]})
    assert row["accuracy_after_joint"] == 0.7


def test_every_phase_of_every_regime_has_a_registered_score():
    names = set()
    for regime in regimes.REGIMES.names():
        cfg = from_dict({"regime": regime, "class_split": "contiguous" if regimes.uses_split(regime) else None,
                         "freeze_experts": False}, validate=False)
        names |= {p.name for p in regimes.phases(cfg)}
        names |= {p.name for p in regimes.phases(from_dict({**cfg.to_dict(), "freeze_experts": True}, validate=False))}
    assert names == set(PHASES)
    for p in PHASES:
        s = SCORES.get(f"accuracy_after_{p}")
        assert s.direction == "higher" and "validation" in s.definition and s.needs == "history"


def fake_record(t, joint: float, final: float) -> dict:
    """A record of a pretrained_experts trial: 12 classes on 6 experts, two per expert (alive, not collapsed)."""
    alloc = np.zeros((12, 6), dtype=int)
    for c in range(12):
        alloc[c, c // 2] = 10
    steps = ([("pretrain", 0.3)] if t.config["regime"].startswith("pretrain") else []) + [("joint", joint), ("experts", final)]
    return {"schema": 1, "status": "ok", "config": dict(t.config), "history": history(*steps),
            "test": {"accuracy": final, "busiest_share": 1 / 6, "collapsed": 0.0},
            "validation": {"accuracy": final}, "allocation": alloc.tolist(), "timing": {}, "versions": {},
            "bench": {"index": t.index, "name": t.name, "trial_s": 1.0}}


def test_report_only_judges_no_accuracy_advantage_from_runs_csv_without_records(tmp_path, monkeypatch):
    monkeypatch.setattr(runner._Session, "ensure", lambda self: (_ for _ in ()).throw(AssertionError("Ray started")))
    plan = runner.budget_overrides("small", "pretrained_experts")
    out = tmp_path / "out"
    sweep = spec.load("pretrained_experts", plan)
    trials = spec.validate(sweep)
    folder = SweepDir(out / "pretrained_experts")
    folder.create(sweep, trials)
    rng = np.random.default_rng(0)
    joint = {t.index: (0.80 if t.config["regime"] == "frozen_gate" else 0.75) + 0.01 * rng.standard_normal()
             for t in trials}
    records = [fake_record(t, joint[t.index], 0.7) for t in trials]
    runs_frame(records).to_csv(folder.runs_csv, index=False)  # the published directory: runs.csv, no records
    assert not folder.record_files()
    assert cli.main(["pretrained_experts", "--report-only", "--out", str(out)],
                    budget_table={"pretrained_experts": plan}) in (0, 1)
    claim = next(c for c in json.loads((out / "reproduction.json").read_text())["claims"]
                 if c["claim"] == "pretrained_experts.no_accuracy_advantage")
    before = claim["conditions"][0]
    same = [t for t in trials if t.config.get("refit_init") == "same"]
    matched = [t for t in same if t.config["regime"] == "frozen_gate" and t.config["epochs"] == 12]  # 6 pre-training + 6
    assert len(matched) == 3
    want = (np.mean([joint[t.index] for t in matched])
            - np.mean([joint[t.index] for t in same if t.config["regime"] != "frozen_gate"]))
    assert before["value"] == pytest.approx(want, abs=1e-9) and before["verdict"] == "CONTRADICTED"  # about 0.05 > 0.02
    assert before["interval"][0] is not None and before["interval"][0] <= want <= before["interval"][1]

"""runs.csv's ``saturation_epoch`` column (from each record's ``routing_dynamics``) and its table column."""
from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from bench.table.configurations import markdown, summary
from bench.table.tables import load_runs
from bench.table.runs import long_format, record_row
from moe.data import load_dataset
from moe.training.loop import run


def record(index, seed, saturation_epoch):
    dynamics = None if saturation_epoch is None else {"router_saturation": [0.5, 1.0], "saturation_epoch": saturation_epoch}
    return {"status": "ok", "error": None, "config": {"router": "softmax", "seed": seed, "experts": 2},
            "test": {"accuracy": 0.9, "nmi": 0.5}, "history": [{}, {}], "timing": {"train_s": 1.0},
            "allocation": [[1, 0], [0, 1]], "routing_dynamics": dynamics, "test_assignment": [0, 1],
            "bench": {"index": index, "name": "s[experts=2]", "trial_s": 1.5}}


def test_the_column_reads_the_record_and_is_nan_without_dynamics(tmp_path):
    (tmp_path / "records").mkdir()
    for r in (record(0, 0, 2), record(1, 1, 4), record(2, 2, None)):
        (tmp_path / "records" / f"{r['bench']['index']:04d}.json").write_text(json.dumps(r))
    runs = load_runs(tmp_path)
    assert runs["saturation_epoch"].tolist()[:2] == [2, 4] and math.isnan(runs.loc[2, "saturation_epoch"])
    assert list(runs.columns).index("saturation_epoch") < list(runs.columns).index("train_s")  # among the scores
    long = long_format(runs)
    assert long[long["metric"] == "saturation_epoch"]["direction"].unique().tolist() == ["neutral"]
    text = markdown(summary(runs), "t")
    assert "saturation_epoch" in text and "3.000 (range 2.000–4.000, n = 2)" in text  # (2, 4): no interval; NaN left out


def test_a_table_without_dynamics_has_no_saturation_column():
    rows = [{"name": "p", "status": "ok", "seed": s, "accuracy": 0.9, "nmi": 0.5, "saturation_epoch": math.nan,
             "allocation": json.dumps([[3, 0], [0, 2]])} for s in (0, 1)]
    assert "saturation_epoch" not in markdown(summary(pd.DataFrame(rows)), "t")


def test_a_trained_run_gives_its_row_the_first_epoch_at_0_9():
    rec = run({"dataset": "gm6", "n_train": 240, "n_test": 120, "epochs": 4, "experts": 3, "lr": 0.05},
              data=load_dataset("gm6"))
    curve = rec["routing_dynamics"]["router_saturation"]
    assert record_row(rec)["saturation_epoch"] == next(e for e, s in enumerate(curve, start=1) if s >= 0.9)

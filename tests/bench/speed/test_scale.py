"""The scale benchmark's synthetic sweep directories: valid records of the real schema, one per trial of a
grid of exactly N runs, that the tables read back (correctness, not timing)."""
from __future__ import annotations

import json

import pytest

from bench.speed import scale
from bench.sweep.layout import SweepDir
from bench.table.tables import build
from moe.records.record import SCHEMA


@pytest.fixture(scope="module")
def bases():
    return scale.base_records()


def test_grid_has_exactly_n_runs_and_refuses_other_sizes():
    g = scale.grid_for(40)
    assert len(g["router"]) * len(g["lr_ratio"]) * len(g["seed"]) == 40
    with pytest.raises(ValueError, match="multiple of 20"):
        scale.grid_for(30)


def test_synthetic_sweep_is_valid_and_varied(tmp_path, bases):
    folder = scale.synthetic_sweep(tmp_path / "s", 40, bases, seed=3)
    sweep_dir = SweepDir(folder)
    good, damaged = sweep_dir.scan_records()
    assert not damaged and sorted(good) == list(range(40))
    recs = [good[i] for i in range(40)]
    assert all(r["schema"] == SCHEMA and r["status"] == "ok" for r in recs)
    assert {r["config"]["router"] for r in recs} == {"softmax", "topk", "prototype", "hash"}
    # the record's seed and config are the trial's, as bench.sweep writes them
    meta = json.loads(sweep_dir.meta_path.read_text())
    for t, r in zip(meta["trials"], recs):
        assert r["config"] == t["config"] and r["seed"] == t["config"]["seed"] and r["bench"]["name"] == t["name"]
    # scores differ between runs of one configuration (perturbed), and stay in [0, 1]
    accs = [r["test"]["accuracy"] for r in recs]
    assert len(set(accs)) > 30 and all(0.0 <= a <= 1.0 for a in accs)
    assert len({tuple(r["test_assignment"]) for r in recs}) > 30
    built = build(folder, plots=False)
    runs = built["runs"]
    assert len(runs) == 40 and runs["name"].nunique() == 40 // scale.SEEDS
    assert runs["stability_nmi"].notna().all()  # assignments of equal length: every ok run has a stability
    assert len(built["summary"]) == 8


def test_fit_recovers_a_line():
    f = scale.fit([100, 1000, 10000], [2.0 + 0.003 * n for n in (100, 1000, 10000)])
    assert f["per_1000_s"] == pytest.approx(3.0) and f["fixed_s"] == pytest.approx(2.0)
    assert f["max_rel_residual"] < 1e-9

"""The best run of each router (the heat-maps of a sweep) is picked by its validation score, never by its test
score: hand-built records where the run with the best test accuracy is not the one with the best validation
accuracy. No Ray."""
from __future__ import annotations

import json

from bench.table import tables
from bench.table.runs import record_row


def record(index, seed, test_acc, val_acc, allocation, val_nmi=0.5, router="s"):
    return {"status": "ok", "error": None, "config": {"router": router, "seed": seed, "experts": 2},
            "test": {"accuracy": test_acc, "nmi": 0.5},
            "validation": None if val_acc is None else {"accuracy": val_acc, "nmi": val_nmi},
            "history": [{}], "timing": {"train_s": 1.0}, "allocation": allocation, "versions": {"git": "abc"},
            "dataset": {"class_names": ["x", "y"]}, "test_assignment": None,
            "bench": {"index": index, "name": f"{router}[experts=2]", "trial_s": 1.0}}


def heatmaps(runs):
    """The allocation and title of every heat-map a sweep's tables draw (router -> (allocation, title))."""
    return {router: (alloc, title) for router, (alloc, _, title) in tables.best_heatmap_jobs(runs)}


def write(tmp_path, recs):
    (tmp_path / "records").mkdir()
    for r in recs:
        (tmp_path / "records" / f"{r['bench']['index']:04d}.json").write_text(json.dumps(r))
    return tables.load_runs(tmp_path)


def test_runs_csv_has_the_validation_scores_as_val_columns():
    row = record_row(record(0, 0, 0.9, 0.7, [[1, 0], [0, 1]], val_nmi=0.25))
    assert row["accuracy"] == 0.9 and row["val_accuracy"] == 0.7 and row["val_nmi"] == 0.25 and row["nmi"] == 0.5
    assert "val_accuracy" not in record_row(record(0, 0, 0.9, None, [[1, 0], [0, 1]]))


def test_the_best_run_is_the_best_by_validation_accuracy_not_by_test_accuracy(tmp_path):
    best_on_test, best_on_val = [[5, 0], [0, 5]], [[3, 2], [1, 4]]
    runs = write(tmp_path, [record(0, 0, 0.95, 0.70, best_on_test), record(1, 1, 0.80, 0.90, best_on_val),
                            record(2, 2, 0.90, 0.80, [[4, 1], [1, 4]])])
    alloc, title = heatmaps(runs)["s"]
    assert alloc == best_on_val and "by validation accuracy (seed 1)" in title and "validation 0.900" in title


def test_validation_ties_go_to_the_validation_nmi(tmp_path):
    runs = write(tmp_path, [record(0, 0, 0.99, 0.8, [[5, 0], [0, 5]], val_nmi=0.1),
                            record(1, 1, 0.50, 0.8, [[2, 3], [3, 2]], val_nmi=0.6)])
    assert heatmaps(runs)["s"][0] == [[2, 3], [3, 2]]


def test_without_validation_scores_the_first_run_is_shown_not_the_best_on_test(tmp_path):
    runs = write(tmp_path, [record(0, 1, 0.99, None, [[5, 0], [0, 5]]), record(1, 0, 0.50, None, [[2, 3], [3, 2]])])
    alloc, title = heatmaps(runs)["s"]
    assert alloc == [[2, 3], [3, 2]] and "first run (seed 0; no validation scores" in title


def test_the_report_drill_down_picks_its_run_by_validation_too():
    import pandas as pd

    from bench.report import sweep as page_module
    from bench.report.figures import Figures

    rows = pd.DataFrame([
        {"index": 0, "name": "s", "router": "softmax", "status": "ok", "seed": 0, "accuracy": 0.99, "val_accuracy": 0.60,
         "allocation": json.dumps([[5, 0], [0, 5]])},
        {"index": 1, "name": "s", "router": "softmax", "status": "ok", "seed": 1, "accuracy": 0.70, "val_accuracy": 0.90,
         "allocation": json.dumps([[5, 0], [0, 5]])}])
    figures = Figures(None)
    page_module.drill_down(0, "s", rows, {}, ["a", "b"], figures)
    (title,) = [args[2] for kind, args, *_ in figures.jobs if kind == "heatmap"]  # the higher test accuracy (seed 0) does not pick
    assert "best run by validation accuracy 0.900: seed 1, test accuracy 0.700" in title

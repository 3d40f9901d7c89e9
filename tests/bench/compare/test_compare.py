"""bench.compare: shared configurations matched by name (or with fields ignored), each metric's difference
with its bootstrap interval, flagged only where the interval excludes zero, and the command line."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from bench.compare.core import compare_runs, match_key
from bench.compare.cli import main
from bench.uncertainty import difference
from bench.table.tables import load_runs
from tests.bench.sweep_dirs import make_sweep_dir


def frame(rows):
    return pd.DataFrame([{"index": i, "name": n, "status": s, "seed": i, "accuracy": a, "cheating_index": c}
                         for i, (n, s, a, c) in enumerate(rows)])


A = frame([("x[experts=2]", "ok", 0.50, 0.10), ("x[experts=2]", "ok", 0.51, 0.11), ("x[experts=2]", "ok", 0.52, 0.12),
           ("y[experts=2]", "ok", 0.70, 0.3), ("y[experts=2]", "ok", 0.80, 0.2), ("only_a", "ok", 0.1, 0.1)])
B = frame([("x[experts=2]", "ok", 0.90, 0.30), ("x[experts=2]", "ok", 0.91, 0.31), ("x[experts=2]", "ok", 0.92, 0.32),
           ("x[experts=2]", "error", None, None),
           ("y[experts=2]", "ok", 0.80, 0.2), ("y[experts=2]", "ok", 0.70, 0.3), ("only_b", "ok", 0.1, 0.1)])


def test_differences_intervals_and_flags():
    t = compare_runs(A, B, ["accuracy", "cheating_index"]).set_index(["configuration", "metric"])
    assert set(t.index.get_level_values(0)) == {"x[experts=2]", "y[experts=2]"}
    x_acc, x_cheat = t.loc[("x[experts=2]", "accuracy")], t.loc[("x[experts=2]", "cheating_index")]
    assert x_acc["diff"] == pytest.approx(0.40) and x_acc["n_a"] == 3 and x_acc["n_b"] == 3  # the error run left out
    # resampled means lie within [min, max] of each side: the difference within [0.90 - 0.52, 0.92 - 0.50]
    assert 0.38 - 1e-9 <= x_acc["low"] <= 0.40 <= x_acc["high"] <= 0.42 + 1e-9
    assert x_acc["flag"] and x_acc["verdict"] == "B better"
    assert x_cheat["flag"] and x_cheat["verdict"] == "B worse"  # cheating index: lower is better
    y = t.loc[("y[experts=2]", "accuracy")]
    assert y["diff"] == pytest.approx(0.0) and np.isnan(y["low"]) and not y["flag"]  # 2 runs a side: no interval
    assert y["verdict"] == "no clear difference"


def test_bootstrap_against_an_independent_resampling():
    rng = np.random.default_rng(1)
    a, b = rng.normal(0, 1, 8), rng.normal(0.3, 1, 6)
    d = difference(a, b, b_=4000)
    ref = [rng.choice(b, len(b)).mean() - rng.choice(a, len(a)).mean() for _ in range(4000)]
    assert d.diff == pytest.approx(b.mean() - a.mean())
    assert d.low == pytest.approx(np.quantile(ref, 0.025), abs=0.08) and d.high == pytest.approx(np.quantile(ref, 0.975), abs=0.08)
    assert difference(a, b) == difference(a, b)  # fixed seed


def test_no_interval_and_no_flag_below_three_runs_a_side():
    # two runs a side, far apart: a difference, but no interval and no '≠' (a 2-run interval is about [min, max])
    a = frame([("x[experts=2]", "ok", 0.10, 0.1), ("x[experts=2]", "ok", 0.11, 0.1)])
    b = frame([("x[experts=2]", "ok", 0.90, 0.1), ("x[experts=2]", "ok", 0.91, 0.1), ("x[experts=2]", "ok", 0.92, 0.1)])
    r = compare_runs(a, b, ["accuracy"]).iloc[0]
    assert r["diff"] == pytest.approx(0.805) and np.isnan(r["low"]) and np.isnan(r["high"])
    assert not r["flag"] and r["verdict"] == "no clear difference" and "fewer than 3 runs" in r["note"]
    assert r["spread_a"] == "range 0.100–0.110, n = 2" and r["spread_b"].startswith("[")
    d = difference([0.9] * 3, [0.1, 0.2, 0.3], "accuracy")  # a share: the difference stays in [-1, 1]
    assert -1 <= d.low <= d.high <= 1 and d.excludes_zero


def test_sweeps_that_differ_beyond_the_compared_fields_are_named():
    from bench.compare.core import differences
    a = A.assign(epochs=10, dataset="mnist", data_sha256="aaa")
    b = B.assign(epochs=2, dataset="mnist", data_sha256="bbb")
    t = compare_runs(a, b, ["accuracy"])
    found = {d["field"]: (d["a"], d["b"]) for d in differences(a, b, t, (), {"version": 1}, {"version": 2})}
    assert found == {"epochs": (["10"], ["2"]), "data fingerprint": (["aaa"], ["bbb"]), "sweep version": (["1"], ["2"])}
    assert differences(a, a, compare_runs(a, a, ["accuracy"])) == []  # the same sweep: nothing to warn about
    # a field left out of the names is what is compared: no warning for it
    assert differences(a.assign(router="x"), b.assign(router="y", epochs=10, data_sha256="aaa"), t, ["router"]) == []


def test_match_key_leaves_out_ignored_fields():
    assert match_key("topk[k=2,experts=8]") == "topk[k=2,experts=8]"
    assert match_key("topk[k=2,experts=8]", ["router", "top_k"]) == match_key("softmax[experts=8]", ["router"]) == "*[experts=8]"
    soft, hard = frame([("softmax[experts=2]", "ok", 0.5, 0.1)]), frame([("topk[k=1,experts=2]", "ok", 0.6, 0.1)])
    assert compare_runs(soft, hard, ["accuracy"]).empty
    t = compare_runs(soft, hard, ["accuracy"], ignore=["router", "k"])
    assert list(t["name_a"]) == ["softmax[experts=2]"] and list(t["name_b"]) == ["topk[k=1,experts=2]"]


@pytest.fixture(scope="module")
def two_sweeps(tmp_path_factory):
    root = tmp_path_factory.mktemp("cmp")
    a = make_sweep_dir(root / "a")
    def perfect(rec):  # noqa: E306 -- B: the same runs, every accuracy 1
        rec["test"]["accuracy"] = 1.0
    b = make_sweep_dir(root / "b", edit=perfect)
    return a, b


@pytest.mark.slow  # trains two sweep directories
def test_cli_writes_markdown_and_html(two_sweeps, tmp_path, capsys):
    a, b = two_sweeps
    assert main([str(a), str(b), "--out", str(tmp_path / "out"), "--metric", "accuracy", "--metric", "nmi"]) == 0
    md = (tmp_path / "out" / "compare.md").read_text()
    assert md == capsys.readouterr().out.split("wrote ")[0].rstrip("\n") + "\n"
    runs = load_runs(a)
    acc_a = runs[runs["name"] == "softmax[experts=3]"]["accuracy"]
    assert acc_a.max() < 1.0
    acc = re.search(r"\| `softmax\[experts=3\]` \| accuracy ↑ \|.*\|", md).group(0)
    # two seeds a side: the difference, no interval and no verdict
    assert f"| {1 - acc_a.mean():.3f} (no interval: n < 3 a side) |  |" in acc and "**≠" not in md
    assert f"{acc_a.mean():.3f} (range {acc_a.min():.3f}–{acc_a.max():.3f}, n = 2)" in acc
    page = (tmp_path / "out" / "compare.html").read_text()
    assert '<table id="compare" class="sortable">' in page and "B better" not in page


@pytest.mark.slow  # trains two sweep directories
def test_cli_errors_are_one_line_with_exit_2(two_sweeps, tmp_path, capsys):
    a, _ = two_sweeps
    assert main([str(a), str(tmp_path / "missing")]) == 2
    assert main([str(a), str(a), "--metric", "acuracy"]) == 2
    other = frame([("z[experts=9]", "ok", 0.5, 0.1)])
    (tmp_path / "z").mkdir()
    other.to_csv(tmp_path / "z" / "runs.csv", index=False)
    assert main([str(a), str(tmp_path / "z")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("error: ") for line in err) and "share no configuration" in err[2]

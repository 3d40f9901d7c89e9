"""``summary`` (one row per configuration) against a per-configuration reference written with pandas Series, as the
table was computed before it read float columns as arrays: equal to the last bit, with NaN scores, error runs, a
single run, a stability column, an integer and a flag column, and a configuration whose runs all failed."""
from __future__ import annotations

import math

import numpy as np
import pytest
import pandas as pd

from bench.table.configurations import collapsed_runs, score_columns, summary
from bench.uncertainty import Summary, summarize
from moe.records.record import STATUSES


def reference(runs: pd.DataFrame) -> pd.DataFrame:
    scores = score_columns(runs) + [c for c in ("train_s", "trial_s") if c in runs.columns]
    rows = []
    for name, g in runs.sort_values("index").groupby("name", sort=False):
        ok = g[g["status"] == "ok"]
        row = {"name": name, "router": g["router"].iloc[0], "runs": len(g)}
        for s in STATUSES:
            row[f"n_{s}"] = int((g["status"] == s).sum())
        row["n_collapsed"] = collapsed_runs(ok)
        for c in scores:
            vals = pd.to_numeric(ok[c], errors="coerce").dropna()
            row[f"{c}_mean"] = float(vals.mean()) if len(vals) else math.nan
            spread = len(vals) > 1 and not c.startswith("stability_")
            row[f"{c}_std"] = float(vals.std(ddof=1)) if spread else math.nan
            st = summarize(vals.tolist(), c) if spread else Summary(len(vals), row[f"{c}_mean"])
            row.update({f"{c}_n": st.n, f"{c}_low": st.low, f"{c}_high": st.high, f"{c}_min": st.min, f"{c}_max": st.max})
        rows.append(row)
    return pd.DataFrame(rows)


def test_summary_equals_the_per_configuration_reference_to_the_last_bit():
    rng = np.random.default_rng(3)
    n = 97
    names = [f"cfg{k % 13}" for k in rng.permutation(n)]
    runs = pd.DataFrame({
        "index": rng.permutation(n), "name": names, "router": [s.split("g")[1] for s in names],
        "status": rng.choice(["ok", "ok", "ok", "error", "diverged"], n),
        "accuracy": rng.random(n) * 0.3 + 0.7, "nmi": np.where(rng.random(n) < 0.2, np.nan, rng.random(n)),
        "stability_nmi": rng.random(n), "busiest_share": rng.random(n), "train_s": rng.random(n) * 1e3,
        "saturation_epoch": rng.integers(1, 9, n), "collapsed": rng.random(n) < 0.3})
    runs.loc[runs["name"] == "cfg1", "status"] = "error"  # no ok run at all
    runs = pd.concat([runs, runs.iloc[:1].assign(name="single", index=n, status="ok")], ignore_index=True)
    got, want = summary(runs), reference(runs)
    assert len(got) == 14 and "saturation_epoch_mean" in got and "collapsed_mean" in got
    pd.testing.assert_frame_equal(got, want, check_exact=True)


def reference_summary(values, bounds):
    """The rule with its own fresh generator and one bootstrap at a time (bench.uncertainty's parts, as summarize
    computed it before summaries were drawn together)."""
    from bench.uncertainty import MIN_RUNS, clean, clip, generator, percentile_interval, resampled_means
    a = clean(values)
    n = len(a)
    if n == 0:
        return Summary(0, math.nan)
    mean, lo, hi = float(a.mean()), float(a.min()), float(a.max())
    if n < MIN_RUNS or lo == hi:
        return Summary(n, mean, *((lo, hi) if n >= MIN_RUNS else (math.nan, math.nan)), lo, hi)
    return Summary(n, mean, *clip(*percentile_interval(resampled_means(a, generator())), bounds), lo, hi)


def test_summaries_drawn_together_equal_one_at_a_time_to_the_last_bit(monkeypatch):
    from bench import uncertainty
    from bench.uncertainty import clean, summarize_many

    monkeypatch.setattr(uncertainty, "_CHUNK", 50_000)  # several chunks per size
    rng = np.random.default_rng(7)
    values, bounds = [], []
    for t in range(600):
        n = int(rng.integers(0, 40)) if t % 3 else int(rng.integers(3, 9))
        a = [rng.random(n), rng.normal(0, 1e3, n), rng.integers(0, 3, n).astype(float), np.round(rng.random(n), 2)][t % 4]
        values.append(list(a) + ([math.nan, None, math.inf] if t % 7 == 0 else []))
        bounds.append((0.0, 1.0) if t % 2 else (-math.inf, math.inf))
    uncertainty._KEPT.clear()
    got = summarize_many([clean(v) for v in values], bounds)
    want = [reference_summary(v, b) for v, b in zip(values, bounds)]
    assert sum(g.has_interval for g in got) > 300
    for g, w in zip(got, want):
        assert (g.n, g.mean, g.low, g.high, g.min, g.max) == pytest.approx((w.n, w.mean, w.low, w.high, w.min, w.max),
                                                                           rel=0, abs=0, nan_ok=True)
    assert summarize(values[1], bounds=bounds[1]) == got[1]  # one at a time: the same (and kept)

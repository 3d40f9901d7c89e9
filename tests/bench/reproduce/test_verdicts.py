"""Verdicts with uncertainty: bootstrap intervals against exact enumerations of every resample, their
properties, the three verdicts and the failed premise, the seeds-needed formula, the sensitivity line, and
collapsed runs left out or kept and counted."""
from __future__ import annotations

import dataclasses
import itertools
import math
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from bench.reproduce import bootstrap as boot
from bench.reproduce import claims
from bench.reproduce import engine
from bench.reproduce import measures as M

from runs_frames import frame, run_row, shares
from test_claims import cheating_frame, joint_frame, lr_frame


def exact_interval(resample_values: list[float], level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of an exactly enumerated, equally likely list of resample statistics: the smallest
    value whose cumulative share reaches (1 - level) / 2, and (1 + level) / 2 (written out, not np.quantile)."""
    counts = Counter(round(v, 12) for v in resample_values)
    total, running, cdf = len(resample_values), 0, []
    for v in sorted(counts):
        running += counts[v]
        cdf.append((v, running / total))
    q = (1 - level) / 2
    return next(v for v, f in cdf if f >= q - 1e-12), next(v for v, f in cdf if f >= 1 - q - 1e-12)


def mean_claim(op: str = ">", threshold: float = 0.5, shift: float | None = None) -> engine.Claim:
    return engine.Claim("t.mean", "t", "text", "source",
                        (engine.Condition("mean", {"measure": "accuracy"}, op, threshold, "mean accuracy", shift),))


def acc_frame(values: list[float]) -> pd.DataFrame:
    return frame([run_row(i, "x", seed=i, accuracy=v) for i, v in enumerate(values)])


# ---------------------------------------------------------------------------------------------------
# The bootstrap against exact enumeration, and its properties
# ---------------------------------------------------------------------------------------------------

def test_mean_interval_matches_the_exact_distribution_of_all_n_to_the_n_resamples():
    # 4 runs (0, 0, 0, 1): the 256 resamples' means are k/4, k ~ Binomial(4, 1/4); CDF 0.316, 0.738, 0.949,
    # 0.996, 1: the 2.5% quantile is 0 and the 97.5% one 3/4 (not the range's 1), each level at least 5
    # Monte Carlo standard errors (B = 2,000) from a jump of the CDF, so the resampled interval must agree.
    values = [0.0, 0.0, 0.0, 1.0]
    exact = exact_interval([float(np.mean(r)) for r in itertools.product(values, repeat=4)])
    assert exact == (0.0, 0.75)
    stat = engine.stat_mean(acc_frame(values), "accuracy")
    assert (stat.low, stat.high) == pytest.approx(exact) and stat.value == pytest.approx(0.25) and stat.seeds == 4
    # n = 2: the four resamples (a, a), (a, b), (b, a), (b, b) would give [a, b], the range: no interval
    stat = engine.stat_mean(acc_frame([0.3, 0.7]), "accuracy")
    assert exact_interval([0.3, 0.5, 0.5, 0.7]) == pytest.approx((0.3, 0.7))
    assert math.isnan(stat.low) and stat.value == pytest.approx(0.5)
    assert stat.interval_note == "too few runs: 2 (an interval needs at least 3)"


def test_difference_interval_resamples_each_side_on_its_own_and_matches_the_exact_enumeration():
    # a = (0, 1, 1), b = (0, 0, 0, 1): 3^3 x 4^4 = 6,912 equally likely pairs of resamples; exact interval
    # [-0.25, 1.0]
    a, b = [0.0, 1.0, 1.0], [0.0, 0.0, 0.0, 1.0]
    diffs = [float(np.mean(ra) - np.mean(rb)) for ra in itertools.product(a, repeat=3) for rb in itertools.product(b, repeat=4)]
    exact = exact_interval(diffs)
    assert exact == (-0.25, 1.0)
    runs = frame([run_row(i, "a", side="a", accuracy=v) for i, v in enumerate(a)]
                 + [run_row(10 + i, "b", side="b", accuracy=v) for i, v in enumerate(b)])
    stat = engine.stat_difference(runs, "accuracy", {"side": "a"}, {"side": "b"})
    assert stat.value == pytest.approx(2 / 3 - 1 / 4) and (stat.low, stat.high) == pytest.approx(exact)
    # two runs on a side: no interval, 'too few runs' named with the side
    two = engine.stat_difference(runs.iloc[1:], "accuracy", {"side": "a"}, {"side": "b"})
    assert math.isnan(two.low) and "too few runs: 2" in two.interval_note and "side=a" in two.interval_note


def test_interval_properties_contain_the_mean_shrink_with_runs_and_repeat_exactly():
    rng = np.random.default_rng(1)
    few, many = rng.normal(0.8, 0.05, 5), rng.normal(0.8, 0.05, 80)
    s_few, s_many = engine.stat_mean(acc_frame(list(few)), "accuracy"), engine.stat_mean(acc_frame(list(many)), "accuracy")
    for s in (s_few, s_many):
        assert s.low <= s.value <= s.high
    width_few, width_many = s_few.high - s_few.low, s_many.high - s_many.low
    assert width_many < width_few / 2  # 16 x the runs: about a quarter of the width
    again = engine.stat_mean(acc_frame(list(few)), "accuracy")
    assert (again.low, again.high) == (s_few.low, s_few.high)  # a fixed generator: the same numbers every time


def test_correlation_intervals_resample_configurations_and_seeds():
    # 5 configurations, 3 seeds each, x and y rising together: the point rho is 1; a resample that draws a
    # configuration twice ties its cheating index but not its (resampled) accuracy, so rho dips below 1 there
    rows = []
    for g in range(5):
        for seed in range(3):
            rows.append(run_row(len(rows), f"c{g}", seed=seed, accuracy=0.5 + 0.1 * g + 0.01 * seed, cheating_index=0.1 * g))
    up = engine.stat_correlation(frame(rows), "accuracy", "cheating_index")
    assert up.value == pytest.approx(1.0) and up.high == pytest.approx(1.0) and 0.5 < up.low < 1.0
    assert "resamples undefined" in up.interval_note  # a resample drawing one configuration only has no rho
    runs = frame(rows)
    runs["cheating_index"] = -runs["cheating_index"]
    down = engine.stat_correlation(runs, "accuracy", "cheating_index")
    assert down.low == pytest.approx(-1.0) and -1.0 < down.high < -0.5
    assert (down.low, down.high) == pytest.approx((-up.high, -up.low))  # the same resamples, mirrored
    # fewer than 3 runs in a configuration: no interval, and the reason says so
    few = engine.stat_correlation(frame(rows[::3] + rows[1::3]), "accuracy", "cheating_index")
    assert math.isnan(few.low) and few.interval_note.startswith("too few runs (fewer than 3) in 5 configuration(s)")


def test_the_trend_test_against_a_hand_computation():
    # x = levels 1, 1, 2, 2; y = 1, 2, 3, 4: ranks of x 1.5, 1.5, 3.5, 3.5 (centred -1, -1, 1, 1), of y centred
    # -1.5, -0.5, 0.5, 1.5: rho = 4 / (2 sqrt 5) = 0.894. Of the 24 orderings of y, those with rho >= 0.894 give
    # both top values to level 2: 2! 2! = 4, so the exact one-sided p is 4 / 24 = 1/6; falling: 1 (every ordering
    # has rho >= -0.894... at most 0.894), p = 1
    x, y = np.array([1.0, 1.0, 2.0, 2.0]), np.array([1.0, 2.0, 3.0, 4.0])
    assert engine.spearman(list(x), list(y)) == pytest.approx(4 / (2 * math.sqrt(5)))
    assert engine.permutation_p(x, y, "greater") == pytest.approx(1 / 6)
    assert engine.permutation_p(x, y, "less") == pytest.approx(1.0)
    # a perfect rise over 4 distinct levels: 1 ordering of 24
    assert engine.permutation_p(np.arange(4.0), np.arange(4.0)) == pytest.approx(1 / 24)
    # above EXACT_UP_TO runs, random orderings: (1 + k) / (1 + 10,000), against the exact share of the 9! orderings
    # (distinct values: rho = 1 - 6 sum d^2 / (n (n^2 - 1)), written out)
    xs, ys = np.arange(9.0), np.array([2.0, 0, 4, 1, 3, 6, 5, 8, 7])
    perms = np.array(list(itertools.permutations(range(9))))
    rho_of = lambda d2: 1 - 6 * d2 / (9 * 80)  # noqa: E731
    exact = float(np.mean(rho_of(((perms - xs) ** 2).sum(axis=1)) >= rho_of(((ys - xs) ** 2).sum()) - 1e-12))
    assert rho_of(((ys - xs) ** 2).sum()) == pytest.approx(0.85) and exact == pytest.approx(0.00304, abs=1e-5)
    assert engine.permutation_p(xs, ys) == pytest.approx(exact, abs=1.5e-3)  # 3 Monte Carlo standard errors
    # the claim's statistic: rho over all runs, judged by the test (SUPPORTED for a rise, CONTRADICTED for a fall)
    rise = lr_frame({1: 0.5, 3: 0.6, 10: 0.7}, seeds=3)
    stat = engine.stat_rank_correlation(rise, {"expert_share": 0}, "lr_ratio")
    # ranks of x tied within levels (2, 5, 8; centred -3, 0, 3), of y 1..9 (centred -4..4): rho = 54 / sqrt(54 x 60)
    assert stat.n == 9 and stat.value == pytest.approx(54 / math.sqrt(54 * 60))
    assert stat.p_greater == pytest.approx(6 ** 3 / math.factorial(9), abs=1e-3)  # 3!^3 orderings keep the levels
    assert engine.verdict_at(stat, ">", 0) == engine.SUPPORTED and engine.verdict_at(stat, "<", 0) == engine.CONTRADICTED
    flat = engine.stat_rank_correlation(lr_frame({1: 0.5, 3: 0.5, 10: 0.5}, seeds=3), {"expert_share": 0}, "lr_ratio")
    assert engine.verdict_at(flat, ">", 0) == engine.INCONCLUSIVE


def test_rowwise_spearman_agrees_with_the_single_spearman():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(20, 6)), rng.normal(size=(20, 6))
    y[:, 2] = y[:, 3]  # ties
    rows = boot.rowwise_spearman(x, y)
    assert rows == pytest.approx([engine.spearman(list(a), list(b)) for a, b in zip(x, y)])
    assert math.isnan(boot.rowwise_spearman(np.ones((1, 4)), x[:1, :4])[0])


# ---------------------------------------------------------------------------------------------------
# Verdicts, seeds needed, sensitivity
# ---------------------------------------------------------------------------------------------------

def test_the_three_verdicts():
    claim = mean_claim(">", 0.5)
    yes = engine.evaluate(claim, acc_frame([0.80, 0.82, 0.85]))
    no = engine.evaluate(claim, acc_frame([0.20, 0.25, 0.22]))
    open_ = engine.evaluate(claim, acc_frame([0.30, 0.70, 0.50, 0.65]))
    assert (yes.status, no.status, open_.status) == (engine.SUPPORTED, engine.CONTRADICTED, engine.INCONCLUSIVE)
    o = open_.outcomes[0]
    assert o.stat.low < 0.5 < o.stat.high and o.reason == ""
    # seeds needed: n (h / |v - t|)^2 with h the half-width on the threshold's side
    want = math.ceil(4 * ((o.stat.value - o.stat.low) / (o.stat.value - 0.5)) ** 2)
    assert o.seeds_needed == want and want > 4
    assert math.isnan(yes.outcomes[0].seeds_needed)  # decided: nothing to ask for
    # one run: no interval, INCONCLUSIVE with the reason
    one = engine.evaluate(claim, acc_frame([0.9]))
    assert one.status == engine.INCONCLUSIVE and one.outcomes[0].reason == "too few runs: 1 (an interval needs at least 3)"
    assert one.outcomes[0].stat.value == pytest.approx(0.9) and math.isnan(one.outcomes[0].stat.low)


def test_seeds_needed_by_hand():
    assert boot.seeds_needed(0.6, 0.4, 0.75, 0.5, 5) == 20  # h 0.2, d 0.1: 5 x 4
    assert boot.seeds_needed(0.4, 0.1, 0.55, 0.5, 3) == 7  # below: h = 0.55 - 0.4 = 0.15, d 0.1: ceil(3 x 2.25)
    assert math.isinf(boot.seeds_needed(0.5, 0.4, 0.6, 0.5, 3))  # on the threshold
    assert math.isnan(boot.seeds_needed(0.5, math.nan, math.nan, 0.4, 3))


def test_a_claim_combines_its_conditions():
    assert engine.combine([engine.SUPPORTED, engine.SUPPORTED]) == engine.SUPPORTED
    assert engine.combine([engine.SUPPORTED, engine.INCONCLUSIVE]) == engine.INCONCLUSIVE
    assert engine.combine([engine.INCONCLUSIVE, engine.CONTRADICTED]) == engine.CONTRADICTED
    assert engine.combine([engine.SUPPORTED, engine.CONTRADICTED]) == engine.CONTRADICTED
    assert engine.combine([]) == engine.INCONCLUSIVE


def test_sensitivity_moves_the_threshold_by_a_quarter_or_by_the_stated_shift():
    runs = acc_frame([0.58, 0.60, 0.62])  # interval within [0.58, 0.62]
    o = engine.evaluate(mean_claim(">", 0.5), runs).outcomes[0]
    assert o.sensitivity() == [(0.375, engine.SUPPORTED), (0.625, engine.CONTRADICTED)]
    o = engine.evaluate(mean_claim(">", 0.0), runs).outcomes[0]
    assert o.sensitivity() == []  # a zero threshold does not move by a share of itself
    o = engine.evaluate(mean_claim(">", 0.0, shift=0.6), runs).outcomes[0]
    assert o.sensitivity() == [(-0.6, engine.SUPPORTED), (0.6, engine.INCONCLUSIVE)]


def test_the_remedies_report_a_failed_premise_instead_of_a_verdict():
    remedy = claims.by_name()["remedies.linear_router"]
    premise = claims.BLACK_BOX_CHEATS
    assert [p.name for p in remedy.premises] == ["cheating.black_box_router_cheats"]
    honest = cheating_frame(0.40, 0.60, 0.3, 0.965)  # the black box does not cheat
    judged = lambda runs, premise_runs: engine.evaluate(  # noqa: E731
        remedy, runs, premises={premise.name: engine.evaluate(premise, premise_runs)})
    v = judged(honest, honest)
    assert v.status == engine.PREMISE_FAILED
    assert v.reason == "the premise `cheating.black_box_router_cheats` is CONTRADICTED"
    assert len(v.outcomes) == 2  # its own numbers are still computed and shown
    # an INCONCLUSIVE premise fails it too; a SUPPORTED one lets the claim's own verdict through
    cheats = cheating_frame(0.95, 0.05, 0.5, 0.965)
    unsure = cheats.copy()
    bb = (unsure["gate"] == "mlp") & unsure["match_router"].isna() & (unsure["gate_hidden"] == 16)
    unsure.loc[bb, "cheating_score"] = 0.35  # black-box mean (4 x 0.95 + 4 x 0.35) / 8 = 0.65, straddling 0.8
    assert judged(cheats, unsure).reason == "the premise `cheating.black_box_router_cheats` is INCONCLUSIVE"
    assert judged(cheats, cheats).status == engine.SUPPORTED
    # evaluate_all judges the premise once, on its own sweep, and passes it on, also when only the remedy was chosen
    verdicts = engine.evaluate_all([remedy], lambda sweep: (honest, ""))
    assert [x.status for x in verdicts] == [engine.PREMISE_FAILED]
    with pytest.raises(M.ClaimError, match="pass its verdict"):
        engine.evaluate(remedy, honest)  # a premise of another sweep is not judged on the remedy's runs
    missing = engine.evaluate_all([remedy], lambda sweep: (None, "files missing"))
    assert missing[0].status == engine.NOT_RUN


def test_verdicts_travel_in_the_json():
    v = engine.evaluate(mean_claim(">", 0.5), acc_frame([0.30, 0.70, 0.50, 0.65]))
    cond = v.to_dict()["conditions"][0]
    assert cond["verdict"] == engine.INCONCLUSIVE and cond["interval"][0] < 0.5 < cond["interval"][1]
    assert cond["seeds_needed"] > 4 and cond["seeds"] == 4 and cond["level"] == 0.95
    assert [s["threshold"] for s in cond["sensitivity"]] == [0.375, 0.625] and cond["collapsed"] == 0


# ---------------------------------------------------------------------------------------------------
# Collapsed runs
# ---------------------------------------------------------------------------------------------------

def test_collapsed_means_busiest_share_of_at_least_099_and_more_than_one_expert():
    runs = frame([run_row(0, "a", allocation=[[99, 1]]), run_row(1, "a", allocation=[[98, 2]]),
                  run_row(2, "a", status="error", allocation=[[100, 0]]),
                  run_row(3, "one", experts=1, allocation=[[50], [50]]),  # a single expert cannot collapse
                  run_row(4, "b", experts=2, busiest_share=1.0), run_row(5, "b", experts=2)])  # no allocation, no share
    assert M.collapsed(runs).tolist() == [True, False, False, False, True, False]
    assert M.COLLAPSE_SHARE == 0.99


def test_collapsed_runs_are_left_out_and_counted_or_kept_where_the_claim_says():
    sep = claims.by_name()["fmnist_mnist_joint.no_reliable_separation"]
    assert not sep.keep_collapsed
    runs = joint_frame(False)
    base = engine.evaluate(sep, runs).outcomes[0].stat
    one_expert = np.zeros((12, 6), dtype=int)
    one_expert[:, 0] = 5
    more = pd.concat([runs, frame([run_row(10 + i, "softmax[experts=6]", seed=i + 1, experts=6, accuracy=0.5,
                                           allocation=one_expert) for i in range(3)])], ignore_index=True)
    stat = engine.evaluate(sep, more).outcomes[0].stat
    assert stat.value == pytest.approx(base.value) and stat.n == base.n  # left out ...
    assert stat.collapsed == 3 and not stat.collapsed_kept  # ... and counted
    # lr asymmetry keeps them: the fast expert taking everything is the finding
    wins = claims.by_name()["lr_asymmetry.fast_expert_wins"]
    assert wins.keep_collapsed
    lr = lr_frame({1: 0.5, 100: 0.6})
    lr = pd.concat([lr, frame([run_row(50, "softmax[lr_ratio=100]", seed=5, lr_ratio=100.0, accuracy=0.98,
                                       allocation=shares(1.0))])], ignore_index=True)
    stat = engine.evaluate(wins, lr).outcomes[0].stat
    assert stat.value == pytest.approx((0.58 + 0.60 + 0.62 + 1.0) / 4) and stat.collapsed == 1 and stat.collapsed_kept


def test_the_largest_ratio_is_resolved_before_collapsed_runs_are_left_out():
    wins = dataclasses.replace(claims.by_name()["lr_asymmetry.fast_expert_wins"], keep_collapsed=False)
    runs = lr_frame({1: 0.5, 100: 0.6})
    runs.loc[runs["lr_ratio"] == 100, "allocation"] = frame([run_row(0, "x", allocation=shares(1.0))])["allocation"][0]
    o = engine.evaluate(wins, runs).outcomes[0]
    assert o.stat.note == "no ok run matches" and o.stat.collapsed == 3  # not the ratio-1 runs instead
    assert o.verdict == engine.INCONCLUSIVE

"""The cross-fitted, chance-corrected cheating score, the constant-experts check and the expert prediction entropy on
all inputs: hand computations and hand-built routers at the expert counts the claims read (E up to 4,096)."""
from __future__ import annotations

import math

import pytest
import torch

from moe.scoring.cheating import (MIN_COVERAGE, cheating_score, cheating_score_undefined, constant_experts_accuracy,
                          cross_fitted_router, expert_prediction_entropy_all)
from moe.training.controls import allocation_controls, routed
from moe.scoring.metrics import allocation
from moe.scoring.scores import cheating_score_undefined as undefined_from_scores
from moe.scoring.scores import score


def test_cross_fitted_router_by_hand():
    # 3 classes, 3 experts. Fit split: expert 0 mostly class 0, expert 1 class 2, expert 2 never reached.
    fit = torch.tensor([[5, 0, 0],
                        [1, 2, 0],
                        [0, 3, 0]])
    test = torch.tensor([[4, 1, 2],
                         [2, 1, 0],
                         [0, 4, 6]])
    r = cross_fitted_router(test, fit)
    # seen experts 0 and 1 hold 6 + 6 = 12 of 20 test samples; majority classes m_0 = 0, m_1 = 2
    assert r["coverage"] == pytest.approx(12 / 20)
    assert r["r_cf"] == pytest.approx((4 + 4) / 12)
    p = torch.tensor([7, 3, 10]) / 20  # test class shares
    assert r["r_0"] == pytest.approx(float(6 * p[0] + 6 * p[2]) / 12)
    acc = 0.9
    want = (8 / 12 - r["r_0"]) / (acc - r["r_0"])
    assert cheating_score(test, fit, acc) == pytest.approx(want)
    # the router alone beats the mixture: the reference is the router's accuracy, so the score is 1
    assert cheating_score(test, fit, 0.6) == pytest.approx(1.0)


def test_score_registers_the_cross_fitted_scores():
    y = torch.tensor([0, 0, 1, 1, 2, 2, 0, 1])
    a = torch.tensor([0, 0, 1, 1, 2, 2, 0, 1])
    fit = torch.eye(3, dtype=torch.long) * 4
    s = score(y, y, a, 3, 3, fit_allocation=fit)
    assert s["cheating_score"] == pytest.approx(1.0) and s["cheating_coverage"] == 1.0
    assert s["constant_experts_accuracy"] == 1.0 and s["constant_experts_drop"] == 0.0
    assert undefined_from_scores(s) is None
    assert "cheating_score" not in score(y, y, a, 3, 3)  # no validation allocation: not computed
    assert undefined_from_scores(score(y, y, a, 3, 3)) == "no validation allocation"
    with pytest.raises(ValueError, match="fit_allocation"):
        score(y, y, a, 3, 3, fit_allocation=torch.ones(3, 2, dtype=torch.long))


@pytest.mark.parametrize("seed", range(5))
def test_hash_router_at_1024_experts_scores_about_zero(seed):
    """The in-sample index read 0.49 here; the cross-fitted score is within 0.05 of 0 (2,000 test samples)."""
    y_val, y_test = torch.arange(800) % 10, torch.arange(2000) % 10
    gen = torch.Generator().manual_seed(seed)
    fit = allocation(y_val, routed("hash", y_val, 1024, 10, gen), 10, 1024)
    test = allocation(y_test, routed("hash", y_test, 1024, 10, gen), 10, 1024)
    assert abs(cheating_score(test, fit, 0.95)) < 0.05


@pytest.mark.parametrize("experts", [10, 64, 256, 1024, 4096])
def test_controls_at_every_expert_count(experts):
    rows = {r["control"]: r for r in allocation_controls((experts,))}
    assert rows["cheater"]["cheating_score"] == pytest.approx(1.0)
    assert abs(rows["hash"]["cheating_score"]) < 0.05 and abs(rows["random"]["cheating_score"]) < 0.05
    assert rows["class pairs"]["cheating_score"] == pytest.approx((0.5 - 0.1) / 0.9, abs=0.07)  # about halfway
    # the in-sample index it replaces grows with E for the hash router (its bias); the score does not
    if experts >= 256:
        assert rows["hash"]["cheating_index"] > 0.15


def test_too_little_coverage_is_undefined():
    y = torch.arange(2000) % 10
    fit = torch.zeros(10, 200, dtype=torch.long)
    fit[0, 0] = 1  # the fit split reached one expert of 200
    test = allocation(y, torch.arange(2000) % 200, 10, 200)
    assert cross_fitted_router(test, fit)["coverage"] < MIN_COVERAGE
    assert cheating_score_undefined(test, fit, 0.95) == "fit split reaches too few experts"
    assert math.isnan(cheating_score(test, fit, 0.95))


def test_collapsed_and_near_chance_are_undefined():
    y = torch.arange(1000) % 10
    collapsed = allocation(y, torch.zeros(1000, dtype=torch.long), 10, 4)
    assert cheating_score_undefined(collapsed, collapsed, 0.9) == "collapsed"
    spread = allocation(y, y % 4, 10, 4)
    assert cheating_score_undefined(spread, spread, 0.12) == "near chance"


def test_constant_experts_accuracy_by_hand():
    # expert 0 learned class 1, expert 1 class 0, expert 2 unseen (gets the fit split's most frequent class, 1)
    fit = torch.tensor([[0, 3, 0],
                        [5, 0, 0]])
    w = torch.tensor([[0.7, 0.3, 0.0],   # votes: class 1 0.7, class 0 0.3 -> 1
                      [0.2, 0.6, 0.2],   # class 1 0.4 (0.2 + 0.2), class 0 0.6 -> 0
                      [0.1, 0.6, 0.3],   # class 1 0.4, class 0 0.6 -> 0
                      [0.0, 0.0, 1.0]])  # class 1 -> 1
    y = torch.tensor([1, 0, 1, 1])
    assert constant_experts_accuracy(y, w, fit) == pytest.approx(3 / 4)


def test_expert_prediction_entropy_on_all_inputs_by_hand():
    # expert 0 predicts class 0 on all 4 samples (entropy 0); expert 1 predicts 0, 1, 0, 1 (log 2 of log 4)
    preds = torch.tensor([[0, 0], [0, 1], [0, 0], [0, 1]])
    assert expert_prediction_entropy_all(preds, 4) == pytest.approx((0 + 0.5) / 2)
    assert expert_prediction_entropy_all(preds, 1) == 0.0

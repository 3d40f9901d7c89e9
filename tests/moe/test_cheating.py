"""moe.scoring.cheating: the bounded cheating index on hand-built allocation tables (with the values the first formula,
(r - 1/C) / (acc - 1/C), gave for them), collapse and near chance at their thresholds, and the renamed expert
prediction entropy; through moe.scoring.scores.score where the whole path matters."""
from __future__ import annotations

import math

import pytest
import torch

from moe.scoring import metrics
from moe.scoring import scores
from moe.scoring.cheating import (NEAR_CHANCE, cheating_index, cheating_undefined, expert_prediction_entropy, majority_share,
                          near_chance)
from moe.scoring.metrics import COLLAPSE_SHARE


def old_index(alloc, acc):
    """The first, unbounded formula, to show what the hand-built cases used to give."""
    C = len(alloc)
    r = sum(max(col) for col in zip(*alloc)) / sum(map(sum, alloc))
    return (r - 1 / C) / (acc - 1 / C)


def run_from_table(alloc, n_right):
    """Labels, assignment and predictions with allocation ``alloc`` [C, E] and exactly ``n_right`` correct
    predictions (the first n_right samples right, the rest predicted as the next class)."""
    pairs = [(c, e) for c, row in enumerate(alloc) for e, k in enumerate(row) for _ in range(k)]
    y = torch.tensor([c for c, _ in pairs])
    a = torch.tensor([e for _, e in pairs])
    C = len(alloc)
    preds = torch.where(torch.arange(len(y)) < n_right, y, (y + 1) % C)
    return y, preds, a


# ---------------------------------------------------------------------------------------------------
# Hand-computed cases of (r - b) / (max(acc, r) - b)
# ---------------------------------------------------------------------------------------------------

# name, allocation [C, E], accuracy on the kept samples, cheating index by hand, the first formula's value
CASES = [
    # the router alone is perfect, the experts spoil it (acc 0.5): r = 1, b = 1/4; the first formula gave 3
    ("router beats mixture", [[25, 0, 0, 0], [0, 25, 0, 0], [0, 0, 25, 0], [0, 0, 0, 25]], 0.5, 1.0, 3.0),
    # balanced, C = 3, E = 2: r = 60/90, b = 1/3, acc 0.9: (1/3) / (0.9 - 1/3)
    ("half the classes per expert", [[30, 0], [15, 15], [0, 30]], 0.9, (1 / 3) / (0.9 - 1 / 3), (1 / 3) / (0.9 - 1 / 3)),
    # imbalanced, C = 2: r = 0.8, b = 0.75, acc 0.95: 0.05 / 0.2 = 0.25, where the 1/C baseline gave 0.3 / 0.45
    ("imbalanced classes", [[60, 15], [5, 20]], 0.95, 0.25, 0.3 / 0.45),
    # the routing ignores the class: r = b exactly
    ("class-blind routing", [[10, 10], [10, 10], [10, 10]], 0.9, 0.0, 0.0),
    # router = classifier, mixture as good: 1
    ("the router is the classifier", [[20, 0], [0, 20]], 1.0, 1.0, 1.0),
]


@pytest.mark.parametrize("name,alloc,acc,want,old", CASES, ids=[c[0] for c in CASES])
def test_bounded_index_by_hand(name, alloc, acc, want, old):
    assert cheating_index(alloc, acc) == pytest.approx(want, rel=1e-12, abs=1e-15)
    assert old_index(alloc, acc) == pytest.approx(old)
    assert cheating_undefined(alloc, acc) is None


@pytest.mark.parametrize("name,alloc,acc,want,old", CASES, ids=[c[0] for c in CASES])
def test_score_gives_the_hand_computed_index(name, alloc, acc, want, old):
    n = sum(map(sum, alloc))
    y, preds, a = run_from_table(alloc, round(acc * n))
    s = scores.score(y, preds, a, len(alloc), len(alloc[0]))
    assert s["accuracy"] == pytest.approx(acc)
    assert s["cheating_index"] == pytest.approx(want, rel=1e-12, abs=1e-15)
    assert scores.cheating_undefined(s) is None


def test_index_of_a_run_near_chance_that_read_10():
    """C = 10, balanced: r = 0.2 and acc = 0.11 gave (0.2 - 0.1) / (0.11 - 0.1) = 10 with the first formula;
    the mixture is near chance, so the index is undefined."""
    alloc = [[50, 50] if c < 2 else [100, 0] if c < 6 else [0, 100] for c in range(10)]
    assert majority_share(alloc) == pytest.approx(0.1)
    assert old_index(alloc, 0.11) == pytest.approx((metrics.purity(alloc) - 0.1) / 0.01)
    assert math.isnan(cheating_index(alloc, 0.11)) and cheating_undefined(alloc, 0.11) == "near chance"


def test_index_stays_in_the_unit_interval_on_random_tables():
    g = torch.Generator().manual_seed(0)
    defined = 0
    for _ in range(400):
        C, E = int(torch.randint(2, 8, (1,), generator=g)), int(torch.randint(1, 8, (1,), generator=g))
        alloc = torch.randint(0, 30, (C, E), generator=g) * (torch.rand(C, E, generator=g) < 0.7)
        acc = float(torch.rand((), generator=g))
        ci, why = cheating_index(alloc, acc), cheating_undefined(alloc, acc)
        assert math.isnan(ci) == (why is not None)
        if why is None:
            defined += 1
            assert 0.0 <= ci <= 1.0
    assert defined > 100


# ---------------------------------------------------------------------------------------------------
# Collapse and near chance at their thresholds
# ---------------------------------------------------------------------------------------------------

def test_collapse_threshold():
    assert COLLAPSE_SHARE == 0.99
    assert metrics.collapsed([99, 1]) == 1.0 and metrics.busiest_share([99, 1]) == 0.99  # at the threshold
    assert metrics.collapsed([98, 2]) == 0.0
    assert metrics.collapsed([0, 500, 0]) == 1.0 and metrics.collapsed([7]) == 1.0  # E = 1: always collapsed
    assert math.isnan(metrics.collapsed([0, 0])) and math.isnan(metrics.busiest_share([0, 0]))


def test_a_collapsed_model_is_undefined_not_honest():
    """Every sample on one expert, balanced classes: the first formula gave 0 ('does not cheat'), which put
    collapsed runs on the cheating-index Pareto front."""
    C = 5
    y = torch.arange(500) % C
    s = scores.score(y, y, torch.full_like(y, 3), C, 4)
    assert old_index(metrics.allocation(y, torch.full_like(y, 3), C, 4).tolist(), 1.0) == pytest.approx(0.0)
    assert s["collapsed"] == 1.0 and s["busiest_share"] == 1.0 and s["router_only_accuracy"] == pytest.approx(0.2)
    assert math.isnan(s["cheating_index"]) and scores.cheating_undefined(s) == "collapsed"
    # 99% on one expert is collapsed too; 98% is not (its index is small and defined)
    a = torch.where(torch.arange(500) < 5, 1, 0)
    assert scores.score(y, y, a, C, 4)["collapsed"] == 1.0
    a = torch.where(torch.arange(500) < 10, 1, 0)
    s = scores.score(y, y, a, C, 4)
    assert s["collapsed"] == 0.0 and 0.0 <= s["cheating_index"] < 0.02


def test_collapse_is_named_before_near_chance():
    alloc = [[50, 0], [50, 0]]
    assert cheating_undefined(alloc, 0.5) == "collapsed"
    assert cheating_undefined([[0, 0], [0, 0]], math.nan) == "no samples kept"


@pytest.mark.parametrize("acc,baseline,near", [
    (0.32, 0.25, 1.0), (0.33, 0.25, 0.0),  # C = 4: margin 0.1 * 0.75 = 0.075 above 0.25
    (0.54, 0.5, 1.0), (0.56, 0.5, 0.0),  # C = 2: margin 0.05
    (0.10, 0.25, 1.0),  # below the baseline
    (1.0, 1.0, 1.0),  # one class only: nothing to beat
])
def test_near_chance_threshold(acc, baseline, near):
    assert NEAR_CHANCE == 0.1
    assert near_chance(acc, baseline) == near
    assert math.isnan(near_chance(math.nan, 0.5)) and math.isnan(near_chance(0.5, math.nan))


def test_a_near_chance_model_is_undefined():
    """A model a little above chance whose router knows the class: the first formula gave ~ 9.8."""
    C = 10
    y = torch.arange(1000) % C
    a = y % 5  # five experts, two classes each: r = 0.5
    preds = torch.where(torch.arange(1000) < 110, y, (y + 1) % C)  # accuracy 0.11
    s = scores.score(y, preds, a, C, 5)
    assert s["accuracy"] == pytest.approx(0.11) and s["near_chance"] == 1.0 and s["collapsed"] == 0.0
    assert math.isnan(s["cheating_index"]) and scores.cheating_undefined(s) == "near chance"
    assert old_index(metrics.allocation(y, a, C, 5).tolist(), 0.11) == pytest.approx(40.0)


# ---------------------------------------------------------------------------------------------------
# The expert prediction entropy (formerly expert_constancy)
# ---------------------------------------------------------------------------------------------------

def test_expert_prediction_entropy_by_hand():
    # expert 0 on 4 samples predicts [0, 0, 1, 1] (entropy log 2), expert 1 on 2 samples predicts [2, 2] (0);
    # expert 2 takes no sample and is left out: (log 2 / log 4 + 0) / 2 = 0.25
    a = torch.tensor([0, 0, 0, 0, 1, 1, -1])
    own = torch.tensor([0, 0, 1, 1, 2, 2, 3])
    ep = torch.stack([own, own, own], 1)
    assert expert_prediction_entropy(a, ep, 4, 3) == pytest.approx(0.25)
    s = scores.score(own, own, a, 4, 3, expert_preds=ep)
    assert s["expert_prediction_entropy"] == pytest.approx(0.25) and "expert_constancy" not in s
    assert math.isnan(expert_prediction_entropy(torch.full((3,), -1), ep[:3], 4, 3))

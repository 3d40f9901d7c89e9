"""The causal and chance-corrected building blocks on hand-built cases and against independent references: adjusted mutual
information (scikit-learn), Spearman's rank correlation (scipy), co-activation, and the causal scores of the
ablation matrix (moe.scoring.causal)."""
import math

import numpy as np
import pytest
import torch

from moe.scoring import ami as adjusted
from moe.scoring import causal
from moe.scoring import metrics as m
from moe.scoring.scores import DIRECTIONS, SCORES, score


def labels_of(table):
    """Two label vectors whose contingency table is ``table`` (rows: first labels, columns: second)."""
    a, b = [], []
    for r, row in enumerate(table):
        for k, n in enumerate(row):
            a += [r] * int(n)
            b += [k] * int(n)
    return np.array(a), np.array(b)


# ------------------------------------------------------------------------------------------- AMI

@pytest.mark.parametrize("seed", range(12))
def test_ami_and_expected_mi_match_scikit_learn_on_random_tables(seed):
    from sklearn.metrics import adjusted_mutual_info_score  # (here: the other tests of this file need no scikit-learn)
    from sklearn.metrics.cluster import expected_mutual_information as sk_emi

    rng = np.random.default_rng(seed)
    rows, cols = rng.integers(2, 7), rng.integers(2, 9)
    table = rng.integers(0, 30 if seed % 2 else 4, size=(rows, cols))
    table[0, 0] += 1
    table[-1, -1] += 1  # at least two rows and two columns used
    a, b = labels_of(table)
    assert adjusted.adjusted_mutual_information(table) == pytest.approx(adjusted_mutual_info_score(a, b), abs=1e-9)
    contingency = table[table.sum(1) > 0][:, table.sum(0) > 0]
    assert adjusted.expected_mutual_information(table) == pytest.approx(sk_emi(contingency, int(table.sum())), abs=1e-9)


def test_ami_is_one_for_identical_partitions_and_about_zero_for_independent_ones():
    assert adjusted.adjusted_mutual_information([[5, 0, 0], [0, 7, 0], [0, 0, 3]]) == pytest.approx(1.0)
    # a product table: I = 0 exactly, AMI = -E[I] / (...) < 0, small
    independent = torch.tensor([[1.0], [2.0], [3.0]]) @ torch.tensor([[4.0, 4.0, 8.0]])
    ami = adjusted.adjusted_mutual_information(independent)
    assert -0.05 < ami < 0
    assert m.nmi(independent) == pytest.approx(0.0, abs=1e-12)


def test_ami_corrects_the_chance_level_that_nmi_shows_on_small_random_tables():
    rng = np.random.default_rng(0)
    nmis, amis = [], []
    for _ in range(20):  # 60 samples, 10 classes, 10 experts, routing independent of the class
        a, b = rng.integers(0, 10, 60), rng.integers(0, 10, 60)
        table = m.contingency(torch.as_tensor(a), torch.as_tensor(b))
        nmis.append(m.nmi(table))
        amis.append(adjusted.adjusted_mutual_information(table))
    assert np.mean(nmis) > 0.3  # NMI rewards chance structure
    assert abs(np.mean(amis)) < 0.05


def test_ami_edge_cases_follow_nmi():
    assert math.isnan(adjusted.adjusted_mutual_information([[0, 0], [0, 0]]))
    assert adjusted.adjusted_mutual_information([[4]]) == 1.0  # both partitions trivial
    assert adjusted.adjusted_mutual_information([[4, 0], [3, 0]]) == pytest.approx(0.0)  # one expert: no information


def test_ami_is_a_registered_score_beside_nmi():
    order = list(DIRECTIONS)
    assert order.index("ami") == order.index("nmi") + 1 and DIRECTIONS["ami"] == "higher"
    s = score([0, 0, 1, 1, 2, 2], [0, 0, 1, 1, 2, 2], [0, 0, 1, 1, 2, 2], 3, 3)
    assert s["ami"] == pytest.approx(1.0) and s["nmi"] == pytest.approx(1.0)


# ------------------------------------------------------------------------------------------- Spearman

@pytest.mark.parametrize("seed", range(6))
def test_spearman_matches_scipy_with_ties(seed):
    from scipy.stats import spearmanr  # (here: collecting the file imports no scipy.stats)

    rng = np.random.default_rng(seed)
    x, y = rng.integers(0, 5, 30).astype(float), rng.normal(size=30)
    y[:10] = 0.0  # ties on both sides
    assert causal.spearman(x, y) == pytest.approx(spearmanr(x, y).statistic, abs=1e-12)


def test_spearman_known_values_and_undefined_cases():
    assert causal.spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert causal.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert causal.spearman([1, 2, 3], [1, 1, 1]) != causal.spearman([1, 2, 3], [1, 1, 1])  # NaN: constant
    assert math.isnan(causal.spearman([1.0], [2.0]))
    with pytest.raises(ValueError, match="unequal length"):
        causal.spearman([1, 2], [1, 2, 3])


# ------------------------------------------------------------------------------------------- co-activation

def test_coactivation_counts_pairs_of_active_experts():
    w = torch.tensor([[0.5, 0.5, 0.0], [0.7, 0.0, 0.3], [0.6, 0.4, 0.0], [0.0, 0.0, 0.0]])
    co = m.coactivation(w)
    # expert 0 active in samples 0, 1, 2; expert 1 in 0, 2; expert 2 in 1
    expected = torch.tensor([[1, 2 / 3, 1 / 3], [1, 1, 0], [1, 0, 1]], dtype=torch.float64)
    assert torch.allclose(co, expected)


def test_coactivation_is_none_for_top1_and_nan_for_unused_experts():
    assert m.coactivation(torch.tensor([[1.0, 0.0], [0.0, 0.8]])) is None
    co = m.coactivation(torch.tensor([[0.5, 0.5, 0.0]]))
    assert torch.isnan(co[2]).all() and co[0, 1] == 1


# ------------------------------------------------------------------------------------------- causal scores

def test_an_expert_that_owns_one_class_exactly_is_fully_specialised():
    d = [[0.6, 0.0, 0.0], [0.0, 0.9, 0.0], [0.0, 0.0, 0.0]]  # experts 0, 1 own classes 0, 1; expert 2 does nothing
    assert causal.causal_specialisation(d) == pytest.approx(1.0)


def test_uniform_effects_score_zero_and_gains_are_not_effects():
    assert causal.causal_specialisation([[0.2, 0.2, 0.2, 0.2]]) == pytest.approx(0.0)
    # gains (negative drops) are ignored: the expert's only harm is on class 0
    assert causal.causal_specialisation([[0.4, -0.3, -0.3]]) == pytest.approx(1.0)


def test_causal_specialisation_weights_experts_by_their_effect():
    # expert 0: all of 0.6 on one class (1.0); expert 1: 0.2 spread on two of 3 classes: s = 1/2 -> (1/2-1/3)/(2/3) = 1/4
    d = [[0.6, 0.0, 0.0], [0.0, 0.1, 0.1]]
    assert causal.causal_specialisation(d) == pytest.approx(0.75 * 1.0 + 0.25 * 0.25)


def test_causal_specialisation_is_undefined_without_any_effect_or_with_one_class():
    assert math.isnan(causal.causal_specialisation([[0.0, 0.0], [-0.1, 0.0]]))
    assert math.isnan(causal.causal_specialisation([[0.5], [0.2]]))


def test_causal_agreement_ranks_cells_like_the_allocation():
    from scipy.stats import spearmanr

    alloc = [[10, 0], [0, 10]]  # class 0 -> expert 0, class 1 -> expert 1
    assert causal.causal_agreement([[0.8, 0.0], [0.0, 0.8]], alloc) == pytest.approx(1.0)
    assert causal.causal_agreement([[0.0, 0.8], [0.8, 0.0]], alloc) == pytest.approx(-1.0)
    # shares (1, 0, 0, 1) against drops (0.8, 0, 0, 0.7): the ties of the shares cost a little
    assert causal.causal_agreement([[0.8, 0.0], [0.0, 0.7]], alloc) == pytest.approx(spearmanr([1, 0, 0, 1], [0.8, 0, 0, 0.7]).statistic)
    assert math.isnan(causal.causal_agreement([[0.0, 0.0], [0.0, 0.0]], alloc))
    with pytest.raises(ValueError, match="classes x experts"):
        causal.causal_agreement([[0.8, 0.0], [0.0, 0.7]], [[10, 0, 0], [0, 10, 0]])


def test_importance_agreement_compares_usage_with_the_accuracy_lost():
    alloc = [[30, 10, 0], [0, 10, 0], [0, 0, 5]]  # usage 30, 20, 5
    counts = [40, 10, 5]
    # causal importance = D @ n / N: expert 0 most, then 1, then 2 -> agreement 1
    assert causal.importance_agreement([[0.9, 0, 0], [0.2, 0.5, 0], [0, 0, 0.1]], alloc, counts) == pytest.approx(1.0)
    assert causal.causal_importance([[1.0, 0.0, 0.0]], counts).tolist() == pytest.approx([40 / 55])
    # the busiest expert is the least important
    assert causal.importance_agreement([[0.0, 0, 0], [0.2, 0.5, 0], [0, 0, 1.0]], alloc, counts) == pytest.approx(-0.5)


def test_score_computes_the_causal_scores_when_given_an_ablation():
    y = [0, 0, 1, 1]
    s = score(y, y, [0, 0, 1, 1], 2, 2, ablation=[[1.0, 0.0], [0.0, 1.0]])
    assert s["causal_specialisation"] == pytest.approx(1.0)
    assert s["causal_agreement"] == pytest.approx(1.0)
    assert "causal_specialisation" not in score(y, y, [0, 0, 1, 1], 2, 2)
    with pytest.raises(ValueError, match="ablation"):
        score(y, y, [0, 0, 1, 1], 2, 2, ablation=[[1.0, 0.0]])
    for name in ("causal_specialisation", "causal_agreement", "importance_agreement", "module_nmi", "module_ari"):
        assert SCORES.get(name).ours and DIRECTIONS[name] == "higher"


def test_module_scores_compare_the_gate_with_the_planted_modules_not_the_classes():
    y = [0, 1, 0, 1, 0, 1, 0, 1]
    modules = [0, 0, 0, 0, 1, 1, 1, 1]  # the modules cut across the classes
    by_module = [0, 0, 0, 0, 1, 1, 1, 1]
    s = score(y, y, by_module, 2, 2, modules=modules)
    assert s["module_nmi"] == pytest.approx(1.0) and s["module_ari"] == pytest.approx(1.0)
    assert s["nmi"] == pytest.approx(0.0, abs=1e-12)
    copier = score(y, y, y, 2, 2, modules=modules)  # a gate that copies the labels
    assert copier["nmi"] == pytest.approx(1.0) and copier["module_nmi"] == pytest.approx(0.0, abs=1e-12)
    assert "module_nmi" not in score(y, y, y, 2, 2)

"""moe.scoring.metrics: every score on hand-built assignments whose answer is known in closed form, and against
a naive per-sample reference written here from the formulas in docs/scores.md (plain Python, no torch ops)."""
from __future__ import annotations

import itertools
import math
import sys
import time
from collections import Counter

import pytest
import torch

from moe.scoring import cheating
from moe.scoring import metrics
from moe.scoring import scores
from moe.scoring.metrics import adjusted_rand_index, allocation, mutual_information_bits, nmi, stability
from moe.scoring.scores import DIRECTIONS, SCORE_KEYS, score

nan_ok = dict(nan_ok=True)


def log2(x):
    return math.log(x, 2)


def h(probs):
    """Entropy in nats of a list of probabilities (0 log 0 = 0)."""
    return -sum(p * math.log(p) for p in probs if p > 0)


# ---------------------------------------------------------------------------------------------------
# A naive reference: loops over samples, straight from the definitions in docs/scores.md
# ---------------------------------------------------------------------------------------------------

def naive_score(y, yhat, a, C, E, w, ep, grouping):
    from sklearn.metrics import adjusted_mutual_info_score  # (here: collecting the file imports no scikit-learn)

    n = len(y)
    kept = [i for i in range(n) if a[i] >= 0]
    k = len(kept)
    joint = Counter((y[i], a[i]) for i in kept)
    py = Counter(y[i] for i in kept)
    pe = Counter(a[i] for i in kept)
    mi = sum(c / k * log2((c / k) / (py[cy] / k * pe[ce] / k)) for (cy, ce), c in joint.items())
    hy, he = h([c / k for c in py.values()]), h([c / k for c in pe.values()])
    router_only = sum(max(joint[(c, e)] for c in range(C)) for e in range(E)) / k
    acc_kept = sum(yhat[i] == y[i] for i in kept) / k
    busiest = max(pe.values()) / k
    baseline = max(py.values()) / k  # the majority class's share
    near = acc_kept - baseline <= 0.1 * (1 - baseline)
    out = {
        "accuracy": sum(yhat[i] == y[i] for i in range(n)) / n,
        "dropped": (n - k) / n,
        "mi_bits": mi,
        "nmi": mi * math.log(2) / ((hy + he) / 2),
        "ami": adjusted_mutual_info_score([y[i] for i in kept], [a[i] for i in kept]),  # scikit-learn's
        "purity": router_only,
        "usage_entropy": he / math.log(E),
        "perplexity": math.exp(he),
        "dead_experts": sum(pe[e] / k < 0.01 for e in range(E)) / E,
        "busiest_share": busiest,
        "collapsed": float(busiest >= 0.99),
        "router_only_accuracy": router_only,
        "near_chance": float(near),
        "cheating_index": math.nan if busiest >= 0.99 or near
        else (router_only - baseline) / (max(acc_kept, router_only) - baseline),
    }
    imp = [sum(w[i][e] for i in range(n)) for e in range(E)]
    mean = sum(imp) / E
    out["importance_cv2"] = sum((x - mean) ** 2 for x in imp) / E / mean**2
    out["routing_entropy"] = sum(h([x / sum(row) for x in row]) if sum(row) > 0 else 0.0 for row in w) / n
    out["max_weight"] = sum(max(row) for row in w) / n
    some = [any(ep[i][e] == y[i] for e in range(E)) for i in range(n)]
    right = [yhat[i] == y[i] for i in range(n)]
    out["expert_error"] = sum(not s for s in some) / n
    out["gate_error"] = sum(s and not r for s, r in zip(some, right)) / n
    out["oracle_accuracy"] = 1 - out["expert_error"]
    out["mixture_only_correct"] = sum(r and not s for s, r in zip(some, right)) / n
    own = {e: Counter(ep[i][e] for i in kept if a[i] == e) for e in range(E)}
    used = [e for e in range(E) if own[e]]
    out["expert_prediction_entropy"] = sum(h([c / sum(own[e].values()) for c in own[e].values()]) for e in used) \
        / len(used) / math.log(C)
    every = [Counter(ep[i][e] for i in range(n)) for e in range(E)]  # each expert's predictions on every sample
    out["expert_prediction_entropy_all"] = sum(h([c / n for c in cnt.values()]) for cnt in every) / E / math.log(C)
    out["local_fidelity"] = sum(ep[i][a[i]] == yhat[i] for i in kept) / len(kept)  # the routed expert alone agrees
    out["experts_used"] = float(len({a[i] for i in kept}))
    g = [grouping[y[i]] for i in kept]
    ek = [a[i] for i in kept]
    out["partition_nmi"] = naive_nmi(g, ek)
    out["partition_ari"] = pair_counting_ari(g, ek)
    return out


def naive_nmi(u, v):
    k = len(u)
    joint, pu, pv = Counter(zip(u, v)), Counter(u), Counter(v)
    mi = sum(c / k * math.log((c / k) / (pu[x] / k * pv[y] / k)) for (x, y), c in joint.items())
    return mi / ((h([c / k for c in pu.values()]) + h([c / k for c in pv.values()])) / 2)


def pair_counting_ari(u, v):
    """ARI from the pair confusion counts (Hubert & Arabie 1985 in the pair-counting form):
    2 (tp tn - fn fp) / ((tp + fn)(fn + tn) + (tp + fp)(fp + tn)), enumerating every pair of samples."""
    tp = fn = fp = tn = 0
    for i, j in itertools.combinations(range(len(u)), 2):
        same_u, same_v = u[i] == u[j], v[i] == v[j]
        tp += same_u and same_v
        fn += same_u and not same_v
        fp += same_v and not same_u
        tn += not same_u and not same_v
    return 2 * (tp * tn - fn * fp) / ((tp + fn) * (fn + tn) + (tp + fp) * (fp + tn))


def random_inputs(n, C, E, seed, drop=0.1):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, C, (n,), generator=g)
    a = torch.randint(0, E, (n,), generator=g)
    a[torch.rand(n, generator=g) < drop] = -1
    # correlate the predictions with the labels so that accuracy > 1/C and every branch is used
    yhat = torch.where(torch.rand(n, generator=g) < 0.6, y, torch.randint(0, C, (n,), generator=g))
    ep = torch.where(torch.rand(n, E, generator=g) < 0.3, y[:, None], torch.randint(0, C, (n, E), generator=g))
    w = torch.rand(n, E, generator=g, dtype=torch.float64) ** 3
    w[0] = 0.0  # an all-zero row (an expert-choice sample that no expert took)
    w[1:] /= w[1:].sum(1, keepdim=True)
    grouping = [c % 3 for c in range(C)]
    return y, yhat, a, w, ep, grouping


# ---------------------------------------------------------------------------------------------------
# The whole score against the naive reference
# ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("n,C,E,seed", [(300, 5, 4, 0), (157, 7, 3, 1), (64, 3, 9, 2)])
def test_score_matches_naive_reference(n, C, E, seed):
    y, yhat, a, w, ep, grouping = random_inputs(n, C, E, seed)
    got = score(y, yhat, a, C, E, weights=w, expert_preds=ep, grouping=grouping)
    want = naive_score(y.tolist(), yhat.tolist(), a.tolist(), C, E, w.tolist(), ep.tolist(), grouping)
    assert set(got) == set(want)
    for key in want:
        assert got[key] == pytest.approx(want[key], rel=1e-9, abs=1e-12, **nan_ok), key


def test_keys_types_and_directions():
    y, yhat, a, w, ep, grouping = random_inputs(50, 4, 3, 0)
    base = score(y, yhat, a, 4, 3)
    assert list(base) == list(SCORE_KEYS[None])
    full = score(y, yhat, a, 4, 3, weights=w, expert_preds=ep, grouping=torch.tensor(grouping),
                 modules=torch.arange(50) % 2, ablation=torch.rand(3, 4, generator=torch.Generator().manual_seed(0)),
                 expert_parameters=7, fit_allocation=torch.ones(4, 3, dtype=torch.long))
    assert set(full) == {k for keys in SCORE_KEYS.values() for k in keys}
    assert set(score(y, yhat, a, 4, 3, weights=w)) == set(SCORE_KEYS[None] + SCORE_KEYS["weights"])
    assert all(type(v) is float for v in full.values())
    assert set(full) <= set(DIRECTIONS)
    assert set(DIRECTIONS.values()) <= {"higher", "lower", "neutral"}
    assert DIRECTIONS["perplexity"] == "neutral" and DIRECTIONS["accuracy"] == "higher"
    assert DIRECTIONS["cheating_index"] == "lower"


# ---------------------------------------------------------------------------------------------------
# Hand-built assignments with known answers
# ---------------------------------------------------------------------------------------------------

def test_one_class_per_expert():
    y = torch.arange(400) % 4
    s = score(y, y, y, 4, 4)
    assert allocation(y, y, 4, 4).tolist() == (100 * torch.eye(4, dtype=torch.long)).tolist()
    assert s["mi_bits"] == pytest.approx(2.0)  # log2 4
    for key in ("nmi", "purity", "usage_entropy", "router_only_accuracy", "cheating_index", "accuracy"):
        assert s[key] == pytest.approx(1.0), key
    assert s["perplexity"] == pytest.approx(4.0)
    assert s["dead_experts"] == 0.0 and s["dropped"] == 0.0


def test_uniform_random_assignment():
    g = torch.Generator().manual_seed(0)
    n, C, E = 20_000, 4, 5
    y = torch.randint(0, C, (n,), generator=g)
    a = torch.randint(0, E, (n,), generator=g)
    s = score(y, y, a, C, E)
    assert s["mi_bits"] < 0.003  # E[I] ~ (C-1)(E-1) / (2 N ln 2) = 4e-4 bits
    assert s["nmi"] < 0.002
    assert s["usage_entropy"] > 0.999
    assert s["perplexity"] == pytest.approx(E, rel=1e-3)
    assert s["purity"] == pytest.approx(1 / C, abs=0.02)
    assert s["cheating_index"] == pytest.approx(0.0, abs=0.03)


def test_everything_in_one_expert():
    """A collapsed run: the router alone predicts the majority class (0.6); its cheating index is
    undefined, where the first formula, (0.6 - 1/3) / (1 - 1/3) = 0.4, read the class imbalance as cheating
    and, on balanced classes, 0 as 'does not cheat'."""
    y = torch.tensor([0] * 60 + [1] * 30 + [2] * 10)
    a = torch.full_like(y, 2)
    s = score(y, y, a, 3, 4)
    assert s["mi_bits"] == pytest.approx(0.0, abs=1e-12) and s["nmi"] == pytest.approx(0.0, abs=1e-12)
    assert s["usage_entropy"] == 0.0 and s["perplexity"] == 1.0
    assert s["dead_experts"] == 0.75
    assert s["busiest_share"] == 1.0 and s["collapsed"] == 1.0 and s["near_chance"] == 0.0
    assert s["purity"] == s["router_only_accuracy"] == pytest.approx(0.6)
    assert math.isnan(s["cheating_index"]) and scores.cheating_undefined(s) == "collapsed"
    assert allocation(y, a, 3, 4)[:, 2].tolist() == [60, 30, 10]


def test_balanced_hash_router():
    g = torch.Generator().manual_seed(1)
    n, C, E = 16_000, 10, 8
    y = torch.randint(0, C, (n,), generator=g)
    a = (torch.arange(n) * 2654435761 % 2**32) % E  # Knuth's multiplicative hash of the sample index
    s = score(y, y, a, C, E)
    assert s["usage_entropy"] == pytest.approx(1.0, abs=1e-9)  # exactly balanced
    assert s["nmi"] < 0.003  # E[I] ~ (C-1)(E-1) / (2 N ln 2) = 0.003 bits, NMI ~ 0.001
    assert s["dead_experts"] == 0.0


def test_single_expert_usage_entropy_is_one():
    y = torch.tensor([0, 1, 1, 2])
    s = score(y, y, torch.zeros(4, dtype=torch.long), torch.tensor(3), 1)  # sizes: any integer type
    assert s["usage_entropy"] == 1.0 and s["perplexity"] == 1.0 and s["dead_experts"] == 0.0


def test_accuracy_identity_on_random_inputs():
    for seed in range(5):
        y, yhat, a, w, ep, grouping = random_inputs(1000, 6, 4, seed, drop=0.0)
        s = score(y, yhat, a, 6, 4, expert_preds=ep)
        assert s["accuracy"] == pytest.approx(1 - s["expert_error"] - s["gate_error"] + s["mixture_only_correct"])
        assert s["oracle_accuracy"] == pytest.approx(1 - s["expert_error"])
        assert s["gate_error"] > 0 and s["expert_error"] > 0 and s["mixture_only_correct"] > 0


def test_cheating_model():
    """Router = label lookup, experts constant (expert e always says e): the router does all the work."""
    C = 5
    y = torch.arange(500) % C
    a = y.clone()  # the router looks the label up
    ep = torch.arange(C).expand(500, C)  # expert e predicts class e for every sample
    preds = ep.gather(1, a[:, None]).squeeze(1)
    s = score(y, preds, a, C, C, expert_preds=ep)
    assert s["accuracy"] == 1.0
    assert s["cheating_index"] == pytest.approx(1.0)
    assert s["expert_prediction_entropy"] == 0.0
    assert s["gate_error"] == 0.0 and s["expert_error"] == 0.0


def test_honest_experts_are_not_constant():
    """Two experts that each take every class (a split that ignores the class) and classify it: each expert
    predicts every class uniformly on its samples: prediction entropy 1, cheating index 0."""
    C = 4
    y = torch.arange(400) % C
    a = (torch.arange(400) // C) % 2
    s = score(y, y, a, C, 2, expert_preds=torch.stack([y, y], 1))
    assert s["expert_prediction_entropy"] == pytest.approx(1.0)
    assert s["cheating_index"] == pytest.approx(0.0) and s["collapsed"] == 0.0


def test_cheating_index_nan_at_or_below_chance():
    y = torch.tensor([0, 1, 2, 3] * 5)
    wrong = (y + 1) % 4
    for preds in (wrong, torch.where(torch.arange(20) < 5, y, wrong)):  # accuracy 0, then exactly 1/C
        s = score(y, preds, y, 4, 4)
        assert math.isnan(s["cheating_index"]) and s["near_chance"] == 1.0
        assert scores.cheating_undefined(s) == "near chance"


def test_mutual_information_2x2_closed_form():
    # binary symmetric channel with crossover 1/4: I = 1 - h2(1/4) bits
    h2 = lambda q: -q * log2(q) - (1 - q) * log2(1 - q)  # noqa: E731
    assert mutual_information_bits([[3, 1], [1, 3]]) == pytest.approx(1 - h2(0.25), rel=1e-12)
    # a general 2 x 2 table [[a, b], [c, d]]: I = H(row) + H(col) - H(row, col) in bits
    a_, b_, c_, d_ = 5, 1, 2, 8
    n = a_ + b_ + c_ + d_
    H = lambda *xs: -sum(x / n * log2(x / n) for x in xs)  # noqa: E731
    closed = H(a_ + b_, c_ + d_) + H(a_ + c_, b_ + d_) - H(a_, b_, c_, d_)
    assert mutual_information_bits(torch.tensor([[a_, b_], [c_, d_]])) == pytest.approx(closed, rel=1e-12)
    # the same table through score(): rows are classes, columns experts
    y = torch.tensor([0] * (a_ + b_) + [1] * (c_ + d_))
    e = torch.tensor([0] * a_ + [1] * b_ + [0] * c_ + [1] * d_)
    s = score(y, y, e, 2, 2)
    assert s["mi_bits"] == pytest.approx(closed, rel=1e-12)
    hr, hc = H(a_ + b_, c_ + d_), H(a_ + c_, b_ + d_)
    assert s["nmi"] == pytest.approx(closed / ((hr + hc) / 2), rel=1e-12)
    assert nmi([[a_, b_], [c_, d_]]) == pytest.approx(closed / ((hr + hc) / 2), rel=1e-12)


def test_ari_published_formula():
    # Hubert & Arabie (1985), by hand: table [[2, 1, 0], [0, 2, 1], [1, 0, 3]], n = 10
    table = [[2, 1, 0], [0, 2, 1], [1, 0, 3]]
    index = 1 + 0 + 0 + 0 + 1 + 0 + 0 + 0 + 3  # sum C(n_ij, 2)
    sum_a = 3 + 3 + 6  # rows 3, 3, 4
    sum_b = 3 + 3 + 6  # columns 3, 3, 4
    expected = sum_a * sum_b / 45
    by_hand = (index - expected) / ((sum_a + sum_b) / 2 - expected)
    assert adjusted_rand_index(table) == pytest.approx(by_hand, rel=1e-12)
    # the same table as two labelings, through the pair-counting form
    u = [r for r, row in enumerate(table) for c, k in enumerate(row) for _ in range(k)]
    v = [c for r, row in enumerate(table) for c, k in enumerate(row) for _ in range(k)]
    assert pair_counting_ari(u, v) == pytest.approx(by_hand, rel=1e-12)
    assert stability(u, v)["ari"] == pytest.approx(by_hand, rel=1e-12)
    # scikit-learn's documented examples of adjusted_rand_score
    assert stability([0, 0, 1, 1], [0, 0, 1, 2])["ari"] == pytest.approx(4 / 7)
    assert adjusted_rand_index([[1, 1, 1, 1]]) == 0.0  # labelings [0, 0, 0, 0] and [0, 1, 2, 3]


def test_stability_is_invariant_to_relabelling():
    g = torch.Generator().manual_seed(3)
    a = torch.randint(0, 6, (500,), generator=g)
    perm = torch.randperm(6, generator=g)
    s = stability(a, perm[a])
    assert s["nmi"] == pytest.approx(1.0) and s["ari"] == pytest.approx(1.0)
    b = torch.randint(0, 6, (500,), generator=g)
    s = stability(a, b)
    assert abs(s["ari"]) < 0.02 and s["nmi"] < 0.03
    # samples dropped in either run are left out
    a2, b2 = a.clone(), perm[a].clone()
    a2[:10], b2[10:20] = -1, -1
    assert stability(a2, b2) == pytest.approx({"nmi": 1.0, "ari": 1.0})


def test_stability_of_a_collapsed_run_is_undefined():
    """A run with every sample on one expert learned no split: no agreement to measure (NaN), where the
    0 / 0 convention would say 1 (both collapsed: 'perfectly stable') or 0 (one collapsed)."""
    assert nmi([[4]]) == 1.0 and adjusted_rand_index([[4]]) == 1.0  # the 1 x 1 table of two collapsed runs
    undefined = [
        ([2, 2, 2, 2], [0, 0, 0, 0]),  # both collapsed, on different experts
        ([0, 0, 0, 0], [0, 1, 2, 3]),  # one collapsed (the formulas: NMI 0, ARI 0)
        ([0, 0, 1, -1], [1, 1, -1, 0]),  # collapsed on the samples kept in both runs (0 and 1)
        ([-1, -1], [0, 1]),  # no sample kept in both
    ]
    for a, b in undefined:
        s = stability(a, b)
        assert math.isnan(s["nmi"]) and math.isnan(s["ari"]), (a, b)


def test_stability_of_split_runs_by_hand():
    assert stability([0, 0, 1, 1], [0, 0, 1, 1]) == pytest.approx({"nmi": 1.0, "ari": 1.0})  # identical
    assert stability([0, 0, 1, 1, 2], [2, 2, 0, 0, 1]) == pytest.approx({"nmi": 1.0, "ari": 1.0})  # relabelled
    # nearly collapsed, the same outlier off the busiest expert: a real (tiny) split, found twice
    assert stability([0] * 9 + [1], [3] * 9 + [5]) == pytest.approx({"nmi": 1.0, "ari": 1.0})
    # nearly collapsed, different outliers: table [[8, 1], [1, 0]], index C(8, 2) = 28, row and column
    # pairs C(9, 2) = 36, expected 36 * 36 / C(10, 2) = 28.8: ARI = (28 - 28.8) / (36 - 28.8) = -1/9
    assert stability([0] * 9 + [1], [1] + [0] * 9)["ari"] == pytest.approx(-1 / 9)


def test_partition_scores():
    # fmnist_mnist-like: classes 0-1 fashion, 2-3 digits; the experts split exactly by group
    y = torch.arange(80) % 4
    grouping = [0, 0, 1, 1]
    a = torch.tensor(grouping)[y] + 2  # experts 2 and 3 take one group each, experts 0 and 1 none
    s = score(y, y, a, 4, 4, grouping=torch.tensor([7, 7, 3, 3]))  # any integer ids
    assert s["partition_nmi"] == pytest.approx(1.0) and s["partition_ari"] == pytest.approx(1.0)
    s = score(y, y, y % 2, 4, 2, grouping=grouping)  # experts split across the groups
    assert s["partition_nmi"] == pytest.approx(0.0, abs=1e-12)


def test_weight_scores_closed_form():
    w = torch.tensor([[0.5, 0.5], [0.0, 1.0], [0.25, 0.75], [0.25, 0.75]])
    y = torch.tensor([0, 1, 1, 1])
    s = score(y, y, w.argmax(1), 2, 2, weights=w)
    # importances [1, 3]: mean 2, population variance 1
    assert s["importance_cv2"] == pytest.approx(1 / 4)
    ent = (math.log(2) + 0.0 + 2 * h([0.25, 0.75])) / 4
    assert s["routing_entropy"] == pytest.approx(ent)
    assert s["max_weight"] == pytest.approx((0.5 + 1 + 0.75 + 0.75) / 4)
    assert metrics.importance_cv2(torch.full((3, 4), 0.25)) == pytest.approx(0.0)


def test_dropped_samples_are_counted_and_excluded():
    y = torch.tensor([0, 0, 1, 1, 1, 2])
    a = torch.tensor([0, -1, 1, 1, -1, -1])
    s = score(y, y, a, 3, 2)
    assert s["dropped"] == 0.5
    assert allocation(y, a, 3, 2).tolist() == [[1, 0], [0, 2], [0, 0]]
    assert s["nmi"] == pytest.approx(1.0) and s["purity"] == 1.0
    every = score(y, y, torch.full_like(y, -1), 3, 2)
    assert every["dropped"] == 1.0 and math.isnan(every["nmi"]) and math.isnan(every["cheating_index"])
    assert math.isnan(every["collapsed"]) and scores.cheating_undefined(every) == "no samples kept"


def test_dead_experts_threshold():
    # 1000 samples: expert 1 gets 9 (< 1%), expert 2 gets 10 (= 1%, alive), expert 3 none
    a = torch.tensor([0] * 981 + [1] * 9 + [2] * 10)
    y = torch.zeros_like(a)
    assert score(y, y, a, 2, 4)["dead_experts"] == 0.5


@pytest.mark.parametrize("kwargs,match", [
    (dict(labels=[0, 1, 5]), "labels: values must lie in"),
    (dict(labels=[0.0, 1.0, 1.0]), "labels: expected integers"),
    (dict(preds=[0, 1]), "preds: expected shape"),
    (dict(assignment=[0, 1, 4]), "assignment: values must lie in"),
    (dict(assignment=[0, -2, 1]), "assignment: values must lie in"),
    (dict(weights=torch.ones(3, 2)), "weights: expected floats of shape"),
    (dict(expert_preds=torch.zeros(3, 4)), "expert_preds: expected integers"),
    (dict(grouping=[0, 1]), "grouping: expected shape"),
    (dict(n_classes=0), "n_classes: expected a positive int"),
    (dict(n_experts=4.0), "n_experts: expected a positive int"),
    (dict(labels=[], preds=[], assignment=[]), "no samples"),
])
def test_bad_inputs_raise(kwargs, match):
    args = dict(labels=[0, 1, 2], preds=[0, 1, 2], assignment=[0, 1, 3], n_classes=3, n_experts=4)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        score(**args)


# ---------------------------------------------------------------------------------------------------
# Vectorised: no Python loop over samples
# ---------------------------------------------------------------------------------------------------

def _lines_executed_in_metrics(fn) -> int:
    """Number of Python lines executed inside moe/scoring/metrics.py, moe/scoring/cheating.py and moe/scoring/scores.py while fn() runs
    (sys.settrace)."""
    targets = {metrics.__file__, scores.__file__, cheating.__file__}
    count = 0

    def local(frame, event, arg):
        nonlocal count
        count += event == "line"
        return local

    sys.settrace(lambda frame, event, arg: local if frame.f_code.co_filename in targets else None)
    try:
        fn()
    finally:
        sys.settrace(None)
    return count


@pytest.mark.slow  # times a large allocation
def test_vectorised_no_loop_over_samples():
    """By structure: the Python lines that score() runs do not grow with N (a loop over samples would
    multiply them). Loosely timed: 70,000 samples x 64 experts, one thread, CPU time well under 1 s
    (about 0.1 s on the development machine; the speed goal itself is the benchmark below)."""
    C, E = 10, 64

    def run(n):
        y, yhat, a, w, ep, grouping = random_inputs(n, C, E, seed=0)
        return lambda: score(y, yhat, a, C, E, weights=w.float(), expert_preds=ep, grouping=grouping)

    small, large = run(200), run(70_000)
    assert _lines_executed_in_metrics(small) == _lines_executed_in_metrics(large)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # CPU time of the work itself, not of threads spinning on a busy machine
    try:
        times = []
        for _ in range(3):
            start = time.process_time()
            large()
            times.append(time.process_time() - start)
    finally:
        torch.set_num_threads(threads)
    assert min(times) < 1.0, f"score() took {min(times):.2f} s of CPU for 70,000 x 64"


def test_benchmark_score_70k_x_64(benchmark):
    """Speed goal (run with --benchmark-only): 70,000 samples x 64 experts well under 1 s on a CPU."""
    y, yhat, a, w, ep, grouping = random_inputs(70_000, 10, 64, seed=0)
    benchmark(score, y, yhat, a, 10, 64, weights=w.float(), expert_preds=ep, grouping=grouping)

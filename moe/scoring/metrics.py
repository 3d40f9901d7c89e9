"""The building blocks of the interpretability scores of a mixture of experts: what the gate learned, and
whom to blame for each error. ``moe.scoring.scores`` registers every score (name, direction, what it needs, its
definition) and computes them all at once (``moe.scoring.scores.score``); :func:`stability` compares two runs;
``moe.scoring.cheating`` holds the cheating diagnosis (cheating index, expert prediction entropy, near chance).

Letters: N samples (the test split), C classes, E experts, G groups of classes.

Inputs of ``moe.scoring.scores.score`` (torch tensors, or anything ``torch.as_tensor`` accepts, on any device):
    labels       [N]    int in [0, C)   true class
    preds        [N]    int in [0, C)   the mixture's prediction
    assignment   [N]    int in [-1, E)  the expert with the largest routing weight; -1 = dropped
    weights      [N, E] float           routing weights (optional)
    expert_preds [N, E] int in [0, C)   each expert's own prediction for every sample (optional)
    grouping     [C]    int             group id of each class (optional; any integers)

Dropped samples (``assignment == -1``: expert-choice routing or a capacity limit left the sample to no
expert) are counted by ``dropped`` (their share of N) and excluded from everything computed from the
assignment: the allocation matrix, ``mi_bits``, ``nmi``, ``purity``, the usage scores (``busiest_share``
and ``collapsed`` too), ``router_only_accuracy``, ``near_chance`` and ``cheating_index`` (whose accuracy is
then the accuracy on the kept samples), ``expert_prediction_entropy`` and the partition scores.
``accuracy``, the oracle error split and the weight-based scores use all N samples. When every sample is
dropped the assignment scores are NaN.

Every count is one ``bincount`` over ``row * n_cols + col``: no Python loop over samples, so 70,000
samples x 64 experts take milliseconds on a CPU. Entropies use natural logarithms unless named ``_bits``;
``0 log 0 = 0`` throughout (``torch.special.xlogy``).
"""
from __future__ import annotations

import math
import operator

import torch

__all__ = [
    "allocation", "stability", "contingency", "entropy",
    "mutual_information_bits", "nmi", "adjusted_rand_index", "purity", "usage_entropy", "perplexity",
    "dead_experts", "importance_cv2", "routing_entropy", "max_weight", "error_attribution",
    "router_only_accuracy", "busiest_share", "collapsed", "COLLAPSE_SHARE", "as_ints", "check_sizes", "bincount2",
    "as_float", "coactivation",
]

NAN = float("nan")
COLLAPSE_SHARE = 0.99  # a run is collapsed when its busiest expert takes at least this share of the kept samples


# ---------------------------------------------------------------------------------------------------
# Input checks
# ---------------------------------------------------------------------------------------------------

def as_ints(x, name: str, low: int, high: int, shape: tuple[int, ...] | None = None, ndim: int = 1):
    """``x`` as an int64 tensor with values in [low, high), checked; one clear ValueError otherwise."""
    t = torch.as_tensor(x)
    if t.numel() == 0 and t.dtype == torch.float32:  # torch.as_tensor([])
        t = t.long()
    if t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
        raise ValueError(f"{name}: expected integers, got dtype {t.dtype}")
    if t.dim() != ndim or (shape is not None and tuple(t.shape) != shape):
        want = f"shape {list(shape)}" if shape is not None else f"{ndim} dimension(s)"
        raise ValueError(f"{name}: expected {want}, got shape {list(t.shape)}")
    t = t.long()
    if t.numel() and (int(t.min()) < low or int(t.max()) >= high):
        raise ValueError(f"{name}: values must lie in [{low}, {high}), got [{int(t.min())}, {int(t.max())}]")
    return t


def check_sizes(n_classes: int, n_experts: int) -> tuple[int, int]:
    sizes = []
    for name, v in (("n_classes", n_classes), ("n_experts", n_experts)):
        try:
            sizes.append(operator.index(v) if not isinstance(v, bool) else None)
        except TypeError:
            sizes.append(None)
        if sizes[-1] is None or sizes[-1] < 1:
            raise ValueError(f"{name}: expected a positive int, got {v!r}")
    return sizes[0], sizes[1]


def bincount2(rows: torch.Tensor, cols: torch.Tensor, n_rows: int, n_cols: int) -> torch.Tensor:
    """Counts of the pairs (rows[i], cols[i]) as a LongTensor [n_rows, n_cols]: one bincount."""
    return torch.bincount(rows * n_cols + cols, minlength=n_rows * n_cols).view(n_rows, n_cols)


def as_float(x) -> torch.Tensor:
    """``x`` as a floating tensor of at least float32 precision."""
    t = torch.as_tensor(x)
    return t if t.dtype in (torch.float32, torch.float64) else t.float()


def _f(x) -> float:
    return float(x.item()) if isinstance(x, torch.Tensor) else float(x)


# ---------------------------------------------------------------------------------------------------
# Building blocks on counts
# ---------------------------------------------------------------------------------------------------

def allocation(labels, assignment, n_classes: int, n_experts: int) -> torch.Tensor:
    """Allocation matrix A [C, E]: A[c, e] = number of class-c samples assigned to expert e.

    Dropped samples (assignment -1) are not counted, so ``A.sum()`` is the number of kept samples.
    The seed paper (Krishnamurthy & Watkins 2021) draws this table in its Figures 1 and 3.
    """
    C, E = check_sizes(n_classes, n_experts)
    y = as_ints(labels, "labels", 0, C)
    a = as_ints(assignment, "assignment", -1, E, shape=tuple(y.shape))
    kept = a >= 0
    return bincount2(y[kept], a[kept], C, E)


def contingency(a, b) -> torch.Tensor:
    """Contingency table T [Ra, Rb] of two labelings of the same samples, with any integer labels.

    T[i, j] counts the samples whose label is the i-th smallest value of ``a`` and the j-th of ``b``.
    """
    a = as_ints(a, "a", -(2**62), 2**62)
    b = as_ints(b, "b", -(2**62), 2**62, shape=tuple(a.shape))
    ua, ia = torch.unique(a, return_inverse=True)
    ub, ib = torch.unique(b, return_inverse=True)
    return bincount2(ia, ib, len(ua), len(ub))


def entropy(counts: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Shannon entropy in nats of the distribution ``counts / counts.sum(dim)``: H = -sum p log p.

    A zero-sum slice has entropy 0.
    """
    c = torch.as_tensor(counts).double()
    total = c.sum(dim, keepdim=True)
    p = c / total.clamp_min(torch.finfo(c.dtype).tiny)
    return -torch.special.xlogy(p, p).sum(dim)


def mutual_information_bits(table) -> float:
    """Mutual information I(R; K) in bits of the joint counts ``table`` [R, K].

    I = sum_rk p_rk log2(p_rk / (p_r p_k)) with p = table / N (Cover & Thomas, eq. 2.28). With rows the
    classes Y and columns the experts E this is the I(E; Y) of the seed papers (max log2 E bits).
    NaN for an empty table.
    """
    t = torch.as_tensor(table).double()
    n = t.sum()
    if n <= 0:
        return NAN
    p = t / n
    outer = p.sum(1, keepdim=True) * p.sum(0, keepdim=True)
    mi = (torch.special.xlogy(p, p) - torch.special.xlogy(p, outer)).sum()
    return max(0.0, _f(mi)) / math.log(2)


def nmi(table) -> float:
    """Normalised mutual information of the joint counts ``table``, arithmetic-mean normalisation.

    NMI = I(R; K) / ((H(R) + H(K)) / 2), in [0, 1] (Strehl & Ghosh 2002 family; the arithmetic mean is
    scikit-learn's default ``average_method``). Both partitions trivial (one row and one column
    used): 1, as in scikit-learn. NaN for an empty table.
    """
    t = torch.as_tensor(table).double()
    if t.sum() <= 0:
        return NAN
    h_r, h_k = _f(entropy(t.sum(1))), _f(entropy(t.sum(0)))
    if h_r == 0.0 and h_k == 0.0:
        return 1.0
    return min(1.0, mutual_information_bits(t) * math.log(2) / ((h_r + h_k) / 2))


def adjusted_rand_index(table) -> float:
    """Adjusted Rand index of the joint counts ``table`` [R, K] (Hubert & Arabie 1985).

    With n_rk the cells, a_r and b_k the margins and n the total:
    index = sum C(n_rk, 2), expected = sum C(a_r, 2) sum C(b_k, 2) / C(n, 2),
    max = (sum C(a_r, 2) + sum C(b_k, 2)) / 2, ARI = (index - expected) / (max - expected).
    1 for identical partitions, about 0 for independent ones (can be negative). When max = expected
    (both partitions trivial and identical, or n < 2) it is 1, as in scikit-learn; NaN when n = 0.
    """
    t = torch.as_tensor(table).double()
    n = _f(t.sum())
    if n <= 0:
        return NAN

    def pairs(x):
        return _f((x * (x - 1) / 2).sum())

    index, sum_a, sum_b = pairs(t), pairs(t.sum(1)), pairs(t.sum(0))
    expected = sum_a * sum_b / (n * (n - 1) / 2) if n > 1 else 0.0
    denom = (sum_a + sum_b) / 2 - expected
    return 1.0 if denom == 0 else (index - expected) / denom


def coactivation(weights) -> torch.Tensor | None:
    """The co-activation table of the routing (OLMoE, Muennighoff et al. 2024, arXiv 2409.02060: 'router co-activation'):
    [E, E] float64 with P[i, j] = #{x : w_i(x) > 0 and w_j(x) > 0} / #{x : w_i(x) > 0}, the share of the
    samples routed to expert i that expert j also takes (the diagonal is 1; NaN rows for experts no sample
    reaches). None when no sample goes to more than one expert (k = 1: nothing co-activates). A dense router
    (softmax: every weight positive) gives a table of ones."""
    active = torch.as_tensor(weights) > 0  # [N, E]
    if active.numel() == 0 or int(active.sum(1).max()) <= 1:
        return None
    a = active.double()
    both = a.T @ a  # [E, E] samples routed to both
    return both / both.diagonal()[:, None]  # 0 / 0 = NaN for an expert no sample reaches


# ---------------------------------------------------------------------------------------------------
# Scores of the allocation matrix A [C, E]
# ---------------------------------------------------------------------------------------------------

def purity(alloc) -> float:
    """Cluster purity (Manning et al. 2008, sec. 16.3): (1/N) sum_e max_c A[c, e]. NaN if A is empty."""
    a = torch.as_tensor(alloc)
    n = _f(a.sum())
    return _f(a.max(0).values.sum()) / n if n > 0 else NAN


def router_only_accuracy(alloc) -> float:
    """Accuracy of the router alone: predict for each sample the most frequent true class of its expert.

    = (1/N) sum_e max_c A[c, e], which equals :func:`purity` (the same count read as a classifier).
    Part of the cheating diagnosis (Implicit Mixture of Interpretable Experts, 2022).
    """
    return purity(alloc)


def usage_entropy(counts) -> float:
    """Normalised usage entropy H(E) / log E of the expert sample counts [E]; 1 = balanced.

    Reported as 1 for E = 1, where the ratio is undefined. NaN when no sample was assigned.
    """
    c = torch.as_tensor(counts)
    if _f(c.sum()) <= 0:
        return NAN
    return 1.0 if c.numel() == 1 else _f(entropy(c)) / math.log(c.numel())


def perplexity(counts) -> float:
    """Perplexity exp H(E) of the expert sample counts [E]: the effective number of experts used."""
    c = torch.as_tensor(counts)
    return math.exp(_f(entropy(c))) if _f(c.sum()) > 0 else NAN


def dead_experts(counts, threshold: float = 0.01) -> float:
    """Share of experts that receive fewer than ``threshold`` (1%) of the assigned samples."""
    c = torch.as_tensor(counts).double()
    n = _f(c.sum())
    return _f((c / n < threshold).double().mean()) if n > 0 else NAN


def busiest_share(counts) -> float:
    """Share of the assigned samples on the busiest expert: max_e n_e / sum_e n_e of the counts [E].

    1/E = balanced, 1 = every sample on one expert. NaN when no sample was assigned.
    """
    c = torch.as_tensor(counts).double()
    n = _f(c.sum())
    return _f(c.max()) / n if n > 0 else NAN


def collapsed(counts, threshold: float = COLLAPSE_SHARE) -> float:
    """1.0 when the busiest expert takes at least ``threshold`` (99%) of the assigned samples, else 0.0.

    A collapsed run learned no split of the inputs (with E = 1 every run is collapsed). The 99% is the
    seed code's own reading of its fmnist_mnist runs ('5 of 10 runs send >= 99% of test samples to one
    expert'); the flag is this project's operationalisation. NaN when no sample was assigned.
    """
    share = busiest_share(counts)
    return NAN if math.isnan(share) else float(share >= threshold)


# ---------------------------------------------------------------------------------------------------
# Scores of the routing weights [N, E]
# ---------------------------------------------------------------------------------------------------

def importance_cv2(weights) -> float:
    """Squared coefficient of variation of the expert importances (Shazeer et al. 2017, eq. 6).

    importance_e = sum_x w_e(x); CV^2 = Var(importance) / Mean(importance)^2 with the population
    variance (as their cv_squared). 0 = equal importance; NaN if every weight is 0.
    """
    imp = torch.as_tensor(weights).sum(0, dtype=torch.float64)
    mean = imp.mean()
    return _f(((imp - mean) ** 2).mean() / mean**2) if _f(mean) != 0 else NAN


def routing_entropy(weights) -> float:
    """Mean per-sample entropy of the routing weights, in nats: (1/N) sum_x -sum_e w_e log w_e.

    Each row is normalised to sum 1 first (a no-op for softmax and renormalised top-k weights); an
    all-zero row counts 0. 0 = hard routing, log E = uniform. Computed in the weights' precision
    (at least float32), summed in float64.
    """
    w = as_float(weights)
    p = w / w.sum(1, keepdim=True).clamp_min(torch.finfo(w.dtype).tiny)
    return _f(-torch.special.xlogy(p, p).sum(1, dtype=torch.float64).mean())


def max_weight(weights) -> float:
    """Mean over samples of the largest routing weight, as given: (1/N) sum_x max_e w_e(x)."""
    return _f(torch.as_tensor(weights).max(1).values.double().mean())


# ---------------------------------------------------------------------------------------------------
# Error attribution
# ---------------------------------------------------------------------------------------------------

def error_attribution(labels, preds, expert_preds) -> dict[str, float]:
    """Blame for each error by oracle routing, after Ismail et al. 2023 (Interpretable Mixture of Experts).

    An oracle router sends each sample to an expert that classifies it correctly, if any does:
    ``expert_error`` = share of samples no expert classifies correctly (no routing could fix them);
    ``gate_error`` = share misclassified although some expert was right (the routing's fault);
    ``oracle_accuracy`` = 1 - expert_error;
    ``mixture_only_correct`` = share classified correctly by the mixture though no single expert is.
    Identity: accuracy = 1 - expert_error - gate_error + mixture_only_correct.
    """
    y = torch.as_tensor(labels).long()
    right = torch.as_tensor(preds).long() == y
    any_expert = (torch.as_tensor(expert_preds).long() == y[:, None]).any(1)
    expert_error = _f((~any_expert).double().mean())
    return {
        "expert_error": expert_error,
        "gate_error": _f((~right & any_expert).double().mean()),
        "oracle_accuracy": 1.0 - expert_error,
        "mixture_only_correct": _f((right & ~any_expert).double().mean()),
    }


# ---------------------------------------------------------------------------------------------------
# Agreement between runs
# ---------------------------------------------------------------------------------------------------

def stability(assignment_a, assignment_b) -> dict[str, float]:
    """Agreement of two runs' assignments of the same samples (runs that differ only in the seed).

    {"nmi": arithmetic-mean NMI, "ari": adjusted Rand index (Hubert & Arabie 1985)} of the contingency
    table of the two assignments; both are invariant to a relabelling of the experts. Samples
    dropped (-1) in either run are excluded.

    Both are NaN when either run is collapsed (its kept samples all on a single expert) or no sample
    is kept in both. Stability asks whether the gate learns the same split of the input space twice; a
    collapsed run learned no split, so there is nothing to agree on. The formulas would still give a
    number, by the 0 / 0 convention of :func:`nmi` and :func:`adjusted_rand_index` (scikit-learn's):
    1 when both runs collapsed, which a sweep table would show as 'perfectly stable', and 0 when one
    did, 'unstable' where the question has no answer. A nearly collapsed run is not special-cased: its
    few samples off the busiest expert give a low score unless the other run sends the same samples off
    too, which is then a real agreement.
    """
    a = as_ints(assignment_a, "assignment_a", -1, 2**62)
    b = as_ints(assignment_b, "assignment_b", -1, 2**62, shape=tuple(a.shape))
    kept = (a >= 0) & (b >= 0)
    table = contingency(a[kept], b[kept])  # [experts used by a, experts used by b]
    if min(table.shape) < 2:
        return {"nmi": NAN, "ari": NAN}
    return {"nmi": nmi(table), "ari": adjusted_rand_index(table)}

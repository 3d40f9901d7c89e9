"""Scores of the ablation matrix: what each expert causes, and whether the routing statistics say so.

Letters: N test samples, C classes, E experts.

The ablation matrix D [E, C] (``moe.scoring.ablation``) holds, for every expert e and class c, the drop of the
test accuracy on class c when e is removed and its samples go to the router's next choice:
D[e, c] = acc_c(full model) - acc_c(without e). It can be negative (removing e helps class c).
The allocation A [C, E] counts the test samples of class c whose top-weight expert is e (``moe.scoring.metrics``).

Spearman's rank correlation (:func:`spearman`) compares the observational and the causal rankings. These are
building blocks of the score registry (``moe.scoring.scores``); the intervention itself, in the spirit of
Monet and InterpretCC (mask an expert and compare the drop on its target with the drop elsewhere), and the
finding that observational routing statistics need not predict an expert's causal importance (the causal
audit of expert importance, arXiv 2606.10703), are the sources.
"""
from __future__ import annotations

import torch


NAN = float("nan")


def spearman(a, b) -> float:
    """Spearman's rank correlation of two equally long sequences: the Pearson correlation of their ranks,
    ties given their average rank (as ``scipy.stats.spearmanr``). NaN when fewer than 2 values, or when
    either sequence is constant (no ranking to agree with)."""
    x, y = torch.as_tensor(a).double().flatten(), torch.as_tensor(b).double().flatten()
    if x.numel() != y.numel():
        raise ValueError(f"spearman: sequences of unequal length {x.numel()} and {y.numel()}")
    if x.numel() < 2 or bool(torch.isnan(x).any() or torch.isnan(y).any()):
        return NAN
    rx, ry = _average_ranks(x), _average_ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denom = float((rx * rx).sum().sqrt() * (ry * ry).sum().sqrt())
    return float((rx * ry).sum()) / denom if denom > 0 else NAN


def _average_ranks(x: torch.Tensor) -> torch.Tensor:
    """Ranks 1..n of x (float64), tied values sharing the mean of their ranks."""
    values, order = torch.sort(x, stable=True)
    _, inverse, counts = torch.unique_consecutive(values, return_inverse=True, return_counts=True)
    starts = torch.cumsum(counts, 0) - counts  # 0-based first position of each tie group
    group_rank = starts.double() + (counts.double() + 1) / 2
    ranks = torch.empty_like(x)
    ranks[order] = group_rank[inverse]
    return ranks


def _matrix(ablation) -> torch.Tensor:
    d = torch.as_tensor(ablation, dtype=torch.float64)
    if d.dim() != 2 or d.numel() == 0:
        raise ValueError(f"ablation: expected a non-empty matrix [E, C], got shape {list(d.shape)}")
    return d


def causal_specialisation(ablation) -> float:
    """How much of each expert's causal effect falls on a single class, in [0, 1] (ours).

    With D+ = max(D, 0) (only the harm of removing an expert counts as its effect), the effect of expert e
    T_e = sum_c D+[e, c], its concentration s_e = max_c D+[e, c] / T_e in [1/C, 1], rescaled to
    (s_e - 1/C) / (1 - 1/C) in [0, 1], and the experts weighted by their share of the total effect:

    causal_specialisation = sum_e (T_e / sum_e' T_e') (s_e - 1/C) / (1 - 1/C).

    1: every expert whose removal costs accuracy costs it on one class only (an expert that owns one class);
    0: every such expert's removal costs every class equally. NaN when C = 1 or no removal costs any accuracy.
    """
    d = _matrix(ablation).clamp_min(0)  # [E, C]
    n_classes = d.shape[1]
    total = d.sum(1)  # [E]
    if n_classes < 2 or float(total.sum()) <= 0:
        return NAN
    used = total > 0
    share = d[used].max(1).values / total[used]
    rescaled = (share - 1 / n_classes) / (1 - 1 / n_classes)
    return float((total[used] / total.sum() * rescaled).sum())


def causal_importance(ablation, class_counts) -> torch.Tensor:
    """[E] the drop of the overall test accuracy when expert e is removed: sum_c (n_c / N) D[e, c]."""
    d = _matrix(ablation)
    n = torch.as_tensor(class_counts, dtype=torch.float64)
    if n.shape != (d.shape[1],) or float(n.sum()) <= 0:
        raise ValueError(f"class_counts: expected {d.shape[1]} counts with a positive sum, got {n.tolist()}")
    return d @ (n / n.sum())


def causal_agreement(ablation, alloc) -> float:
    """Spearman's rank correlation, over the E x C (expert, class) cells, between the observational share
    P(e | c) = A[c, e] / sum_e' A[c, e'] (the share of class c routed to e) and the causal drop D[e, c].

    1: the allocation ranks the cells exactly as the interventions do; about 0: routing statistics say
    nothing about what removing an expert does. Classes with no kept sample are left out. NaN when either
    side is constant (e.g. no removal changes anything)."""
    d, a = _matrix(ablation), torch.as_tensor(alloc, dtype=torch.float64)  # [E, C], [C, E]
    if a.shape != (d.shape[1], d.shape[0]):
        raise ValueError(f"alloc: expected shape [{d.shape[1]}, {d.shape[0]}] (classes x experts), got {list(a.shape)}")
    n_c = a.sum(1)  # [C]
    seen = n_c > 0
    if not bool(seen.any()):
        return NAN
    share = (a[seen] / n_c[seen, None]).T  # [E, C_seen]
    return spearman(share.flatten(), d[:, seen].flatten())


def importance_agreement(ablation, alloc, class_counts) -> float:
    """Spearman's rank correlation, over the E experts, between the observational importance (the share of
    the kept test samples routed to e, n_e / N) and the causal importance (:func:`causal_importance`).
    NaN for E < 2, when either side is constant, or when no sample was kept."""
    a = torch.as_tensor(alloc, dtype=torch.float64)
    usage = a.sum(0)  # [E]
    if float(usage.sum()) <= 0:
        return NAN
    return spearman(usage / usage.sum(), causal_importance(ablation, class_counts))

"""The cheating diagnosis of a mixture of experts, and when it has no answer.

A mixture 'cheats' (Elazar & Taylor 2022, 'Implicit Mixture of Interpretable Experts') when its router
solves the task and each expert is a constant for one class: the interpretable experts then explain
nothing. Two scores read that off a test split: :func:`cheating_index` (the router alone against the
mixture) and :func:`expert_prediction_entropy` (0 = every expert a constant). Both formulas are this
project's operationalisation: only the paper's abstract was available to us.

The cheating index is undefined (NaN) where a number would mislead, and :func:`cheating_undefined` says
why: a collapsed run (``moe.scoring.metrics.collapsed``: at least 99% of the samples on one expert) would score
0, 'does not cheat', having learned no routing at all; an accuracy near chance (:func:`near_chance`)
makes the ratio noise (values of 1.76 and 9.82 were seen from such runs under the old, unbounded form).

Letters: N assigned samples, C classes, E experts; A [C, E] the class x expert allocation counts.
"""
from __future__ import annotations

import math

import torch

from moe.scoring.metrics import NAN, bincount2, collapsed, entropy, router_only_accuracy

__all__ = ["NEAR_CHANCE", "majority_share", "near_chance", "cheating_undefined", "cheating_index",
           "expert_prediction_entropy"]

NEAR_CHANCE = 0.1  # near chance: the accuracy closes at most this share of the gap from the baseline to 1


def majority_share(alloc) -> float:
    """Baseline accuracy: the share of the most frequent class among the assigned samples,
    max_c sum_e A[c, e] / N (1/C on a balanced split). NaN if A is empty."""
    a = torch.as_tensor(alloc)
    n = float(a.sum())
    return float(a.sum(1).max()) / n if n > 0 else NAN


def near_chance(accuracy: float, baseline: float, margin: float = NEAR_CHANCE) -> float:
    """1.0 when ``accuracy - baseline <= margin * (1 - baseline)``: the model closes at most ``margin`` (10%)
    of the gap between the baseline (:func:`majority_share`) and a perfect score, else 0.0. NaN if either
    is NaN. Relative, so that one margin fits 2 classes and 12 (Cohen's kappa <= 0.1 against the majority
    baseline); this project's operationalisation."""
    if math.isnan(accuracy) or math.isnan(baseline):
        return NAN
    return float(accuracy - baseline <= margin * (1.0 - baseline))


def cheating_undefined(alloc, accuracy: float) -> str | None:
    """Why :func:`cheating_index` is undefined for this allocation A [C, E] and accuracy on the assigned
    samples: ``"no samples kept"``, ``"collapsed"`` (:func:`collapsed`), ``"near chance"`` (:func:`near_chance`),
    or None when it is defined. Collapse is checked first: a collapsed run is not a run that 'does not cheat'.
    """
    a = torch.as_tensor(alloc)
    if float(a.sum()) <= 0:
        return "no samples kept"
    if collapsed(a.sum(0)) == 1.0:
        return "collapsed"
    if near_chance(accuracy, majority_share(a)) == 1.0:
        return "near chance"
    return None


def cheating_index(alloc, accuracy: float) -> float:
    """How much of the best above-baseline accuracy the router alone achieves, in [0, 1] by construction.

    With A [C, E] the allocation of the assigned samples, r = :func:`router_only_accuracy` (A) (predict each
    expert's majority class), b = :func:`majority_share` (A) (predict the most frequent class) and a the
    mixture's accuracy on the same samples:

        cheating_index = (r - b) / (max(a, r) - b)

    1 = the router alone classifies as well as the mixture, or better (the experts add nothing: the
    'cheating' of the Implicit Mixture of Interpretable Experts, Elazar & Taylor 2022); 0 = the routing
    carries no class information (each expert's majority class is the overall one). Bounded without a
    clip: r >= b always (sum_e max_c A[c, e] >= sum_e A[c*, e] for the most frequent class c*), and
    max(a, r) >= r. The reference max(a, r) is the better of the two classifiers the model holds, the
    router alone and the whole mixture; the earlier (r - 1/C) / (a - 1/C) exceeded 1 when the router alone
    beat the mixture and exploded as a -> 1/C. NaN, with the reason given by :func:`cheating_undefined`,
    for a collapsed run (it would score 0, 'not cheating', having learned no routing at all), an accuracy
    near chance (the ratio is noise there) and no assigned samples. On a finite test split r is biased
    upwards by about sqrt(E / N) (each expert's majority class is picked from its own samples), so a hash
    router scores slightly above 0. This operationalisation is this project's (only the paper's abstract
    was available to us).
    """
    a = torch.as_tensor(alloc)
    if cheating_undefined(a, accuracy) is not None:
        return NAN
    r, b = router_only_accuracy(a), majority_share(a)
    return (r - b) / (max(accuracy, r) - b)


def expert_prediction_entropy(assignment, expert_preds, n_classes: int, n_experts: int) -> float:
    """Mean over used experts of the entropy of the expert's own predictions on its samples, / log C.

    For expert e, the distribution of expert_preds[x, e] over the samples x assigned to e; its entropy
    divided by log C, averaged over the experts with at least one sample. 0 = every expert is a
    constant (the cheating of the Implicit Mixture of Interpretable Experts, 2022); 1 = each expert
    predicts all C classes equally often on its samples. Named for what a high value means (it was
    ``expert_constancy``, whose high values meant experts that are not constant); this project's
    operationalisation. Dropped samples are excluded; 0 for C = 1; NaN when no expert is used.
    """
    a = torch.as_tensor(assignment).long()
    kept = a >= 0
    a = a[kept]
    own = torch.as_tensor(expert_preds).long()[kept].gather(1, a[:, None]).squeeze(1)
    table = bincount2(a, own, n_experts, n_classes)  # [E, C]
    used = table.sum(1) > 0
    if not bool(used.any()):
        return NAN
    if n_classes == 1:
        return 0.0
    return float(entropy(table[used], dim=1).mean()) / math.log(n_classes)

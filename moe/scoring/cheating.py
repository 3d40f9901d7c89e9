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

The cheating index reads the router-only accuracy on the same test samples it picks each expert's majority
class from, so it is biased upwards as the samples per expert fall (a hash router reads 0.5 at E = 1,024 on
2,000 samples). :func:`cheating_score` is the score that means the same at every E: the majority classes are
learned on the validation split (cross-fitting) and the chance level under permuted labels is subtracted (as
adjusted mutual information does), so a router blind to the class scores about 0 at every E.
:func:`constant_experts_accuracy` is its functional check (the accuracy left when every expert is a constant),
:func:`expert_prediction_entropy_all` the expert prediction entropy on all inputs.

Letters: N assigned samples, C classes, E experts; A [C, E] the class x expert allocation counts.
"""
from __future__ import annotations

import math

import torch

from moe.scoring.metrics import NAN, bincount2, collapsed, entropy, router_only_accuracy

__all__ = ["NEAR_CHANCE", "MIN_COVERAGE", "majority_share", "near_chance", "cheating_undefined", "cheating_index",
           "expert_prediction_entropy", "fitted_majority", "cross_fitted_router", "cheating_score_undefined",
           "cheating_score", "constant_experts_accuracy", "expert_prediction_entropy_all"]

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


# ---------------------------------------------------------------------------------------------------
# The cross-fitted, chance-corrected cheating score: the same meaning at every expert count
# ---------------------------------------------------------------------------------------------------

MIN_COVERAGE = 0.1  # the cheating score needs at least this share of the test samples on experts the fit split reached


def fitted_majority(fit_alloc) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Each expert's majority class learned on a fitting split (the validation split of a run): from its
    allocation F [C, E], ``(majority [E], seen [E], overall)``: majority[e] = argmax_c F[c, e] (the lowest
    class on a tie), seen[e] whether the fitting split sent any sample to e, and the fitting split's most
    frequent class (the constant an unseen expert is given by :func:`constant_experts_accuracy`)."""
    f = torch.as_tensor(fit_alloc)
    if f.dim() != 2:
        raise ValueError(f"fit_allocation: expected a [classes, experts] table, got shape {list(f.shape)}")
    return f.argmax(0), f.sum(0) > 0, int(f.sum(1).argmax())


def cross_fitted_router(alloc, fit_alloc) -> dict[str, float]:
    """The router-only classifier learned on the fitting split and scored on the test split.

    With A [C, E] the test allocation, F [C, E] the fitting split's, m_e = argmax_c F[c, e] and S the experts
    F reaches (n_e = sum_c A[c, e], N_S = sum_{e in S} n_e, p_c = sum_e A[c, e] / N the test class shares):

        r_cf   = (1/N_S) sum_{e in S} A[m_e, e]        (its accuracy on the test samples of the seen experts)
        r_0    = (1/N_S) sum_{e in S} n_e p_{m_e}      (its expected accuracy under the same allocation with the
                                                        test labels permuted: E[A[c, e]] = n_e p_c)
        coverage = N_S / N

    r_cf is not biased upwards as the in-sample router-only accuracy is (whose majority classes are picked
    from the samples it scores: a hash router reads about sqrt(E / N) above chance), and r_0 is its exact
    expectation under permuted test labels. NaN values when the tables are empty or F reaches no expert
    that A uses."""
    a = torch.as_tensor(alloc).double()
    f = torch.as_tensor(fit_alloc)
    if tuple(f.shape) != tuple(a.shape):
        raise ValueError(f"fit_allocation: expected shape {list(a.shape)} (the test allocation's), got {list(f.shape)}")
    n = float(a.sum())
    out = {"r_cf": NAN, "r_0": NAN, "coverage": NAN}
    if n <= 0:
        return out
    major, seen, _ = fitted_majority(f)
    n_e = a.sum(0)
    covered = float(n_e[seen].sum())
    out["coverage"] = covered / n
    if covered <= 0:
        return out
    p = a.sum(1) / n
    hit = a.gather(0, major[None, :]).squeeze(0)  # [E] A[m_e, e]
    out["r_cf"] = float(hit[seen].sum()) / covered
    out["r_0"] = float((n_e * p[major])[seen].sum()) / covered
    return out


def cheating_score_undefined(alloc, fit_alloc, accuracy: float) -> str | None:
    """Why :func:`cheating_score` is undefined: the reasons of :func:`cheating_undefined` (no samples kept,
    collapsed, near chance), then ``"fit split reaches too few experts"`` when the experts the fitting split
    reached take under MIN_COVERAGE (10%) of the test samples (at E = 4,096 a validation split of 800 reaches
    about 18% of a balanced router's experts), or None when it is defined."""
    why = cheating_undefined(alloc, accuracy)
    if why is not None:
        return why
    cover = cross_fitted_router(alloc, fit_alloc)["coverage"]
    if math.isnan(cover) or cover < MIN_COVERAGE:
        return "fit split reaches too few experts"
    return None


def cheating_score(alloc, fit_alloc, accuracy: float) -> float:
    """The cross-fitted, chance-corrected cheating score: how much of the best above-chance accuracy the
    router alone achieves, with each expert's class learned on another split.

        cheating_score = (r_cf - r_0) / (max(acc, r_cf) - r_0)

    with r_cf, r_0 of :func:`cross_fitted_router` (the router-only classifier learned on the fitting split F,
    scored on the test split A, and its expectation under permuted test labels) and acc the mixture's accuracy
    on the same test samples. About 0 for a router that carries no class information (hash, random: E[r_cf] =
    r_0 exactly, at every E), 1 when the router alone classifies as well as the mixture (each expert owns one
    class), (1/2 - 1/C) / (1 - 1/C) = 0.44 for experts that each own a pair of classes (C = 10) under a
    perfect mixture. At most 1; slightly negative by chance. NaN, for the reason of
    :func:`cheating_score_undefined`, when collapsed, near chance, or the fitting split reaches too few
    experts. This project's operationalisation (after Elazar & Taylor 2022; the correction for chance after
    adjusted mutual information, Vinh et al. 2010)."""
    if cheating_score_undefined(alloc, fit_alloc, accuracy) is not None:
        return NAN
    r = cross_fitted_router(alloc, fit_alloc)
    denom = max(accuracy, r["r_cf"]) - r["r_0"]
    return NAN if denom <= 0 else (r["r_cf"] - r["r_0"]) / denom


def constant_experts_accuracy(labels, weights, fit_alloc) -> float:
    """The accuracy left when every expert is replaced by a constant for its majority class learned on the
    fitting split (an expert the fitting split never reached: its most frequent class), the routing weights
    w [N, E] kept as the trained router gives them: predict argmax_c sum_{e: m_e = c} w_e(x). (A constant
    expert q_e = onehot(m_e) makes both the mixture sum_e w_e q_e(y) and the product of experts predict
    this.) Beside the mixture's accuracy it is the functional check of cheating: equal = the experts add
    nothing the router does not already say. NaN for no samples."""
    y = torch.as_tensor(labels).long()
    w = torch.as_tensor(weights).double()
    if y.numel() == 0:
        return NAN
    major, seen, overall = fitted_majority(fit_alloc)
    major = torch.where(seen, major, torch.full_like(major, overall))
    votes = torch.zeros(w.shape[0], int(torch.as_tensor(fit_alloc).shape[0]), dtype=w.dtype)
    votes.index_add_(1, major, w)
    return float((votes.argmax(1) == y).double().mean())


def expert_prediction_entropy_all(expert_preds, n_classes: int) -> float:
    """Mean over all experts of the entropy / log C of the expert's own predictions on every sample (not only
    those routed to it): 0 = every expert predicts one class whatever the input (a constant), 1 = every
    expert predicts all classes equally often. Unlike :func:`expert_prediction_entropy`, it is not pushed down
    by small expert loads (each expert is read on all N samples). 0 for C = 1; NaN for no samples."""
    preds = torch.as_tensor(expert_preds).long()
    if preds.numel() == 0:
        return NAN
    if n_classes == 1:
        return 0.0
    n, e = preds.shape
    table = bincount2(torch.arange(e).repeat(n), preds.reshape(-1), e, n_classes)  # [E, C]
    return float(entropy(table, dim=1).mean()) / math.log(n_classes)

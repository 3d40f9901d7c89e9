"""Local and global interpretability of a mixture of interpretable experts, the two axes along which the
Implicit Mixture of Interpretable Experts (Elazar & Taylor 2022, arXiv 2212.00471) studies accuracy as the
expert count grows. Only that paper's abstract was available to us: these formulas are this project's.

- Local: how much of the mixture's decision on x the routed expert alone explains. :func:`local_fidelity`,
  the share of samples on which the top-weight expert alone predicts what the mixture predicts. Under hard
  routing (one expert per sample) it is 1 by construction; under soft routing it says how often reading one
  expert is enough to explain a prediction.
- Global: how much there is to read to understand the whole model. :func:`experts_used` (the experts that
  take at least one sample) and :func:`used_expert_parameters` (their readable parameters); the effective
  number of experts is ``moe.scoring.metrics.perplexity`` (exp H(E)).

Letters: N samples, E experts; a(x) the top-weight expert of x (-1: dropped), yhat(x) the mixture's
prediction, yhat_e(x) expert e's own prediction, P the readable parameters of one expert.
"""
from __future__ import annotations

import math

import torch

NAN = math.nan


def local_fidelity(assignment, preds, expert_preds) -> float:
    """(1 / N_kept) sum_{x: a(x) >= 0} [yhat_a(x)(x) = yhat(x)]: the share of the samples an expert took on which
    that expert alone gives the mixture's prediction. In [0, 1]; NaN when no sample was taken.

    assignment [N] int (-1: dropped), preds [N] int, expert_preds [N, E] int."""
    a = torch.as_tensor(assignment).long()
    kept = a >= 0
    if not bool(kept.any()):
        return NAN
    own = torch.as_tensor(expert_preds).long()[kept].gather(1, a[kept][:, None])[:, 0]
    return float((own == torch.as_tensor(preds).long()[kept]).double().mean())


def experts_used(usage) -> float:
    """#{e: n_e > 0}: the experts that take at least one sample as top-weight expert (usage [E] counts).
    In [0, E]; a float so that tables can average it over seeds."""
    return float((torch.as_tensor(usage) > 0).sum())


def used_expert_parameters(usage, per_expert: int) -> float:
    """experts_used x P: the parameters one reads to understand every expert the model uses (P the readable
    parameters of one expert: (D + 1) C for a linear or an implicit expert, whose generated weights are read)."""
    return experts_used(usage) * float(per_expert)

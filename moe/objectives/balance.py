"""Load-balancing regularisers of sparse mixtures: importance, load, Switch balance, router z-loss.

Letters: T samples in the batch, E experts. All operate on one batch; none loops over samples or experts.
"""
from __future__ import annotations

import torch
from torch import Tensor

from moe.objectives.base import regulariser


def cv_squared(v: Tensor, eps: float = 1e-10) -> Tensor:
    """Squared coefficient of variation Var(v) / mean(v)^2 with the population variance (as tf.nn.moments
    in Shazeer et al.'s code); 0 for a single value."""
    if v.numel() <= 1:
        return v.sum() * 0
    return v.var(correction=0) / (v.mean() ** 2 + eps)


@regulariser("importance", "importance_loss")
def importance(out, x: Tensor) -> Tensor:
    """Importance loss (Shazeer et al. 2017, eqs. 6-7; the AAAI 2022 follow-up's (std / mean)^2):
    CV(Importance)^2 with Importance_e = sum_x G_e(x), G the routing weights actually used (after top-k)."""
    return cv_squared(out.routing.dense_weights().sum(0))


@regulariser("load", "load_loss")
def load(out, x: Tensor) -> Tensor:
    """Load loss (Shazeer et al. 2017, appendix A, eqs. 8-11): CV(Load)^2 with the smooth load
    Load_e = sum_x Phi((clean_e(x) - kth_excluding(H(x), k, e)) / noise_e(x)) from the noisy top-k router;
    where the router has no smooth load (evaluation), the hard counts of samples per expert."""
    routing = out.routing
    return cv_squared(routing.load if routing.load is not None else routing.plan.counts.to(routing.probs.dtype))


@regulariser("switch", "switch_loss")
def switch_balance(out, x: Tensor) -> Tensor:
    """Switch balance loss (Fedus et al. 2021, eqs. 4-6): E * sum_e f_e P_e, f_e = share of the batch whose
    top-1 expert (argmax of the router's probabilities) is e, P_e = mean router probability of e;
    1 at uniform routing."""
    probs = out.routing.probs  # [T, E]
    n_experts = probs.shape[1]
    f = torch.bincount(probs.argmax(1), minlength=n_experts).to(probs.dtype) / len(probs)
    return n_experts * (f * probs.mean(0)).sum()


@regulariser("z", "z_loss")
def router_z_loss(out, x: Tensor) -> Tensor:
    """Router z-loss (Zoph et al. 2022, ST-MoE, eq. 5): (1/T) sum_x (logsumexp_e z_e(x))^2 of the gate logits."""
    return torch.logsumexp(out.routing.logits, 1).pow(2).mean()

"""Hard routing for the dense routers (``routing: hard | gumbel``): one expert per sample in the forward pass,
the gate trained through a straight-through estimator. A helper of the routers, not a router.

Letters: T samples, E experts, C classes.

Soft routing mixes every expert, p(y | x) = sum_e p_e(x) q_e(y | x), p = softmax(logits). Hard routing sends
x to one expert e*(x) with weight 1 (a one-slot routing plan), so the mixture is q_e*(y | x) and only the
routed expert is evaluated and trained. The argmax has no gradient; the straight-through estimator
(Bengio, Leonard & Courville 2013, arXiv 1308.3432) lets the one-hot h = onehot(e*) pass the gradient of
soft weights s in backward: w = h + s - sg(s) (sg: stop-gradient), whose value is h.

- ``hard``: e* = argmax_e p_e(x), s = p (Bengio et al.'s straight-through with the softmax as the surrogate).
- ``gumbel``: while training, e* = argmax_e (g_e(x) + G_e) with G_e ~ Gumbel(0, 1) i.i.d. (the Gumbel-max
  trick: e* is a sample of softmax(g(x))), s = softmax((g(x) + G) / T): the straight-through Gumbel-softmax
  estimator (Jang, Gu & Poole 2017, 'Categorical reparameterization with Gumbel-softmax', sec. 2.2; Maddison,
  Mnih & Teh 2017), T the gate temperature, annealed by ``temperature_decay`` down to ``temperature_min``.
  Evaluation (no noise): e* = argmax_e g_e(x), as ``hard``.

Where the one-hot meets the experts. The plan's weight is the constant 1 (a gradient through log w would only
ever reinforce the chosen expert, whatever its loss). The model adds :func:`straight_through_term`, whose value
is exactly 0: the mixture is combined in log space, log p(c | x) = sum_e w_e log q_e(c | x) with the
straight-through w, so

    log p(c | x) = log q_e*(c | x) + sum_e (s_e - sg(s_e)) sg(log q_e(c | x)),
    d(-log p(y | x)) / d s_e = -log q_e(y | x) = l_e(x), and for s = softmax(logits): d / d logit_j = s_j (l_j - sum_e s_e l_e).

The gate thus moves towards the experts whose loss on x is below the s-weighted mean (the router gradient of
Jacobs et al.'s competitive loss sum_e s_e l_e), and each expert learns only from the samples routed to it.
It needs every expert's log q_e(y | x) on the batch, computed without gradient (``forward_all``) while
training only. The log-space combination (rather than sum_e w_e q_e, whose gradient q_e(y) / q_e*(y) is
unbounded) is this project's choice; the paper this serves (Elazar & Taylor 2022, 'Implicit Mixture of
Interpretable Experts') routes each input to one expert, but how it trains that is not in its abstract.
"""
from __future__ import annotations

import torch
from torch import Tensor

from kernels import RoutingPlan, dense_route, topk_route
from moe.routers.base import Routing


def gumbel_noise(like: Tensor) -> Tensor:
    """G ~ Gumbel(0, 1) i.i.d. of the shape of ``like``: -log(E), E ~ Exponential(1) (from torch's global generator)."""
    return -torch.empty_like(like).exponential_().log()


def one_slot_plan(expert: Tensor, n_experts: int) -> RoutingPlan:
    """The routing plan of one expert per sample (expert [T] int64), weight the constant 1."""
    tokens = torch.arange(len(expert), device=expert.device)
    return RoutingPlan.from_assignments(tokens, expert, torch.ones(len(expert), device=expert.device), len(expert), n_experts)


def dense_routing(logits: Tensor, mode: str, temperature: float, training: bool, finite: bool = False) -> Routing:
    """The routing of a dense router from its logits [T, E] (already divided by the temperature T).

    ``soft``: every expert, weights softmax(logits). ``hard``: one slot, e* = argmax logits, ``relaxed`` = softmax.
    ``gumbel`` while training: e* = argmax(logits + G / T), ``relaxed`` = softmax(logits + G / T)
    (= softmax((g(x) + G) / T)); when evaluating, as ``hard``. ``finite``: the caller has checked that every logit
    is finite (``moe.routers.base.check_finite``), so soft routing skips the kernel's own check (``dense_route``)."""
    probs = logits.softmax(-1)  # [T, E]
    n_experts = logits.shape[1]
    if mode == "soft":
        plan = dense_route(logits) if finite else topk_route(logits, n_experts, renormalize=False)
        return Routing(plan, logits, probs)
    if mode == "gumbel" and training:
        perturbed = logits + gumbel_noise(logits) / temperature
        relaxed = perturbed.softmax(-1)
        choice = perturbed.detach().argmax(1)
    elif mode in ("hard", "gumbel"):
        relaxed, choice = probs, logits.detach().argmax(1)
    else:
        raise ValueError(f"routing must be one of soft, hard, gumbel, got {mode!r}")
    return Routing(one_slot_plan(choice, n_experts), logits, probs, relaxed=relaxed)


def straight_through_term(relaxed: Tensor, log_q_all: Tensor) -> Tensor:
    """[T, C] sum_e (s_e - sg(s_e)) sg(log q_e(c | x)): value exactly 0, gradient log q_e(c | x) to s_e.

    relaxed: s [T, E]; log_q_all: every expert's log-probabilities [T, E, C] (detached here)."""
    return torch.einsum("te,tec->tc", relaxed - relaxed.detach(), log_q_all.detach().to(relaxed.dtype))

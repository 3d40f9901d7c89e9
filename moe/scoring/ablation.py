"""Ablation attribution: remove one expert at a time and measure the drop of the test accuracy on each class.

Letters: N test samples, C classes, E experts, k slots per sample.

For every expert e the model is run on the test split with e removed (Monet, InterpretCC: intervene on an
expert and compare the drop on its target with the drop elsewhere; a causal audit of expert importance,
arXiv 2606.10703, found that observational routing statistics did not predict it):

- the router's logit of e is set to -inf (``Router.without_removed``), so its own rule picks its next
  choice: top-k and switch take the next-best expert, dense gates renormalise over the others, expert
  choice leaves e's column empty and the others choose again; the hash router sends e's bucket to the next
  expert in hash order; then any slot still on e (a zero weight of a dense gate) is dropped from the plan;
- a router that ignores the mask (a weight > 0 still on e) has e's slots dropped instead: its samples keep
  their other experts or go to none; the record's ``ablation_rule`` says which happened;
- with one expert there is no next choice: every sample goes to no expert.

D[e, c] = acc_c(full model) - acc_c(without e), where a sample that no expert took counts as wrong (its
uniform prediction is no classification), in both terms; a class with no test sample has D = 0.
E forward passes of the test split; above ``MAX_EXPERTS`` experts the ablation is skipped (the record says so).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from kernels import RoutingPlan
from moe.model import MixtureOfExperts
from moe.routers import Routing

MAX_EXPERTS = 64  # E forward passes of the test split, each through up to E experts: skipped above
RULE_REROUTED = "rerouted: the router's next choice"
RULE_DROPPED = "dropped: the router ignored the removal, so the expert's slots were dropped"


@dataclass
class Ablation:
    matrix: Tensor | None  # [E, C] float64 accuracy drops, or None when skipped
    rule: str  # how the removed experts' samples were handled, or why the ablation was skipped


def drop_experts(plan: RoutingPlan, removed: Tensor) -> RoutingPlan:
    """The plan without the slots of the removed experts ([E] bool); the other slots keep their weights."""
    ids = plan.expert_ids  # [T, k]
    keep = (ids >= 0) & ~removed.to(ids.device)[ids.clamp_min(0)]
    tokens = torch.arange(plan.n_tokens, device=ids.device)[:, None].expand_as(ids)
    return RoutingPlan.from_assignments(tokens[keep], ids[keep], plan.weights[keep], plan.n_tokens, plan.n_experts)


class _WithoutExperts(nn.Module):
    """The model's router with experts removed: its own rule on masked logits, then their slots dropped."""

    def __init__(self, router: nn.Module, removed: Tensor):
        super().__init__()
        self.inner, self.removed = router, removed
        self.needs_expert_hidden = router.needs_expert_hidden
        self.batch_dependent = router.batch_dependent
        self.ignored = False  # the router left weight on a removed expert

    def forward(self, x: Tensor, expert_hidden: Tensor | None = None) -> Routing:
        routing = self.inner(x, expert_hidden)
        plan = routing.plan
        on_removed = (plan.expert_ids >= 0) & self.removed.to(plan.expert_ids.device)[plan.expert_ids.clamp_min(0)]
        self.ignored |= bool((plan.weights[on_removed] > 0).any())
        return Routing(drop_experts(plan, self.removed), routing.logits, routing.probs, routing.load)


@contextlib.contextmanager
def without_experts(model: MixtureOfExperts, removed: Tensor):
    """Inside the block, ``model`` runs with the experts ``removed`` ([E] bool) taken out of its routing;
    yields the wrapper (its ``ignored`` flag: the router did not honour the removal). Restored after."""
    router = model.router
    wrapper = _WithoutExperts(router, removed)
    router.removed = removed
    model.router = wrapper
    try:
        yield wrapper
    finally:
        model.router = router
        router.removed = None


@torch.no_grad()
def kept_and_right(model: MixtureOfExperts, x: Tensor, y: Tensor, batch_size: int, order: Tensor | None = None) -> Tensor:
    """[N] bool on the CPU: the sample went to some expert and the mixture classified it correctly, in x's
    order. ``order``: the fixed evaluation order of a batch-dependent router (``moe.training.evaluate.eval_order``)."""
    model.eval()
    xs = x if order is None else x[order.to(x.device)]
    kept, pred = [], []
    for xb in xs.split(batch_size):
        out = model(xb)
        kept.append(out.routing.plan.expert_ids[:, 0] >= 0)
        pred.append(out.log_probs.argmax(1))
    right = (torch.cat(kept) & (torch.cat(pred) == (y if order is None else y[order.to(y.device)]).to(x.device))).cpu()
    return right if order is None else torch.empty_like(right).index_copy_(0, order.cpu(), right)


def class_accuracy(right: Tensor, y: Tensor, n_classes: int) -> Tensor:
    """[C] float64 share of each class's samples that are right (0 for a class with no sample)."""
    y = y.cpu()
    total = torch.bincount(y, minlength=n_classes).double()
    hits = torch.bincount(y, weights=right.double(), minlength=n_classes)
    return torch.where(total > 0, hits / total.clamp_min(1), torch.zeros_like(total))


def ablate(model: MixtureOfExperts, x: Tensor, y: Tensor, n_classes: int, batch_size: int,
           order: Tensor | None = None, max_experts: int = MAX_EXPERTS) -> Ablation:
    """The ablation matrix D [E, C] of the model on (x, y) (the module docstring has the rule); ``order``: the
    fixed evaluation order of a batch-dependent router, as in ``moe.training.evaluate.predict``."""
    n_experts = model.experts.n_experts
    if n_experts > max_experts:
        return Ablation(None, f"skipped: {n_experts} experts > {max_experts} (E forward passes of the test split)")
    full = class_accuracy(kept_and_right(model, x, y, batch_size, order), y, n_classes)
    if n_experts == 1:  # no next choice: every sample goes to no expert and counts as wrong
        return Ablation(full[None, :].clone(), "no other expert: every sample goes to none")
    rows, ignored = [], False
    for e in range(n_experts):
        removed = torch.zeros(n_experts, dtype=torch.bool)
        removed[e] = True
        with without_experts(model, removed) as wrapper:
            rows.append(full - class_accuracy(kept_and_right(model, x, y, batch_size, order), y, n_classes))
        ignored |= wrapper.ignored
    return Ablation(torch.stack(rows), RULE_DROPPED if ignored else RULE_REROUTED)

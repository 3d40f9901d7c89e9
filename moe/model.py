"""The mixture-of-experts classifier: a router builds a routing plan, the expert bank evaluates the routed
(sample, expert) pairs, and the mixture is combined in log space.

Letters: T samples, C classes, E experts, k slots per sample, A routed assignments.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from moe.experts import EXPERTS
from moe.routers import ROUTERS, Routing


@dataclass
class MoEOutput:
    log_probs: Tensor  # [T, C] log sum_j w_tj q_{e_tj}(. | x_t): the mixture's log-probabilities
    expert_log_probs: Tensor  # [T, k, C] log q_e(. | x) of each slot's expert (0 in unused slots)
    routing: Routing


class MixtureOfExperts(nn.Module):
    """p(y | x) = sum_e p_e(x) q_e(y | x), with q_e = softmax(f_e(x)) and p the router's weights
    (Jacobs et al. 1991). Only the experts in the routing plan are evaluated; a sample that no expert
    took (possible with expert-choice routing) gets the uniform distribution 1 / C.
    """

    def __init__(self, router: nn.Module, experts: nn.Module, n_classes: int):
        super().__init__()
        self.router, self.experts, self.n_classes = router, experts, n_classes

    def forward(self, x: Tensor) -> MoEOutput:
        hidden = self.experts.hidden_all(x) if self.router.needs_expert_hidden else None
        routing = self.router(x, hidden)
        plan = routing.plan
        slots = plan.unpermute(torch.log_softmax(self.experts.forward_routed(x, plan), -1))  # [T, k, C]
        valid = plan.expert_ids >= 0  # [T, k]
        log_w = torch.where(valid, plan.weights.clamp_min(1e-30).log(), -math.inf)  # no inf * 0 in backward
        mixed = torch.logsumexp(log_w[..., None] + slots, 1)  # [T, C]
        uniform = torch.full_like(mixed, -math.log(self.n_classes))
        log_probs = torch.where(valid.any(1, keepdim=True), mixed, uniform)
        return MoEOutput(log_probs, slots, routing)


def build_model(cfg, input_shape: tuple[int, ...], n_classes: int) -> MixtureOfExperts:
    """Router and experts from the registries, sized for the data."""
    experts = EXPERTS.get(cfg.expert, "expert")(cfg, input_shape, n_classes)
    router = ROUTERS.get(cfg.router, "router")(cfg, input_shape, cfg.experts)
    return MixtureOfExperts(router, experts, n_classes)

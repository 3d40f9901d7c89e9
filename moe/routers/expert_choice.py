"""``expert_choice``: each expert picks its top samples of the batch."""
from __future__ import annotations

import torch
from torch import Tensor

from kernels import RoutingPlan
from moe.routers.base import ROUTERS, Router, Routing, capacity_slots


@ROUTERS.register("expert_choice")
class ExpertChoiceRouter(Router):
    """Expert-choice routing (Zhou et al. 2022, 'Mixture-of-experts with expert choice routing', eq. 1).

    S = softmax(g(x) / T) [T, E]; expert e takes the k_c samples with the largest S[:, e],
    k_c = ceil(c * T / E) (capacity factor c = ``capacity``, default 1), with weight G = S[t, e]
    (not renormalised, as in the paper). A sample may be taken by several experts or by none
    (then the model gives it the uniform distribution). The routing of a sample depends on its batch.
    """

    batch_dependent = True

    def __init__(self, cfg, input_shape: tuple[int, ...], n_experts: int):
        super().__init__(cfg, input_shape, n_experts)
        self.capacity = 1.0 if cfg.capacity is None else cfg.capacity

    def forward(self, x: Tensor, expert_hidden: Tensor | None = None) -> Routing:
        logits = self.gate_logits(x)
        scores = logits.softmax(-1)  # [T, E]
        k = capacity_slots(self.capacity, len(x), self.n_experts)
        weight, token = scores.topk(k, dim=0)  # [k, E]: each expert's (column's) top-k samples
        expert = torch.arange(self.n_experts, device=x.device).expand(k, -1)
        plan = RoutingPlan.from_assignments(token.T.flatten(), expert.T.flatten(), weight.T.flatten(), len(x), self.n_experts)
        return Routing(plan, logits, scores)

"""``switch``: top-1 routing with an optional expert capacity; overflow samples are dropped."""
from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from kernels import RoutingPlan
from moe.routers.base import ROUTERS, Router, Routing, capacity_slots


@ROUTERS.register("switch")
class SwitchRouter(Router):
    """Switch routing (Fedus, Zoph & Shazeer 2021, 'Switch Transformers', section 2.1-2.2).

    p = softmax(g(x) / T); each sample goes to its top-1 expert e* = argmax p with weight p_e*.
    With a capacity factor c (``capacity``) an expert takes at most ceil(c * T / E) samples of the batch,
    first come first served in batch order; the overflow is dropped (no expert: the model gives it the
    uniform distribution) and counted by the training loop. ``capacity: null`` sets no limit.
    """

    def __init__(self, cfg, input_shape: tuple[int, ...], n_experts: int):
        super().__init__(cfg, input_shape, n_experts)
        self.capacity = cfg.capacity
        self.batch_dependent = cfg.capacity is not None

    def forward(self, x: Tensor, expert_hidden: Tensor | None = None) -> Routing:
        logits = self.gate_logits(x)
        probs = logits.softmax(-1)  # [T, E]
        weight, expert = probs.max(1)  # [T]
        tokens = torch.arange(len(x), device=x.device)
        if self.capacity is not None:
            onehot = F.one_hot(expert, self.n_experts)  # [T, E]
            rank = (onehot.cumsum(0) - 1).gather(1, expert[:, None])[:, 0]  # position in the expert's queue
            keep = rank < capacity_slots(self.capacity, len(x), self.n_experts)
            tokens, expert, weight = tokens[keep], expert[keep], weight[keep]
        plan = RoutingPlan.from_assignments(tokens, expert, weight, len(x), self.n_experts)
        return Routing(plan, logits, probs)

"""``topk``: sparse gating that sends each sample to its k highest-scoring experts."""
from __future__ import annotations

from torch import Tensor

from kernels import topk_route
from moe.routers import ROUTERS, Router, Routing


@ROUTERS.register("topk")
class TopKRouter(Router):
    """Top-k gate (Shazeer et al. 2017, 'Outrageously large neural networks').

    p = softmax((x W_g + b_g) / T); each sample goes to the k experts with the largest p_e, with weights
    G_e = p_e / sum_{e' in topk} p_e' (renormalised) for k > 1. For k = 1 the weight is the raw p_e, as in
    Switch (Fedus et al. 2021), since a renormalised single weight is always 1 and the gate would get no gradient.
    """

    def __init__(self, cfg, input_shape: tuple[int, ...], n_experts: int):
        super().__init__(cfg, input_shape, n_experts)
        self.k = cfg.top_k

    def forward(self, x: Tensor, expert_hidden: Tensor | None = None) -> Routing:
        logits = self.gate_logits(x)
        plan = topk_route(logits, self.k, renormalize=self.k > 1)
        return Routing(plan, logits, logits.softmax(-1))

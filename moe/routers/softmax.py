"""``softmax``: the dense gate of the original mixture of experts."""
from __future__ import annotations

from torch import Tensor

from kernels import topk_route
from moe.routers.base import ROUTERS, Router, Routing


@ROUTERS.register("softmax")
class SoftmaxRouter(Router):
    """Dense softmax gate (Jacobs, Jordan, Nowlan & Hinton 1991, 'Adaptive mixtures of local experts').

    p(x) = softmax(g(x) / T), g the gate network (linear x W_g + b_g by default, or an mlp); every expert
    sees every sample; output = sum_e p_e(x) q_e(y | x).
    """

    def forward(self, x: Tensor, expert_hidden: Tensor | None = None) -> Routing:
        logits = self.gate_logits(x)
        plan = topk_route(logits, self.n_experts, renormalize=False)  # k = E: all experts, weights = softmax
        return Routing(plan, logits, logits.softmax(-1))

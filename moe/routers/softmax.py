"""``softmax``: the dense gate of the original mixture of experts."""
from __future__ import annotations

from torch import Tensor

from moe.routers.base import ROUTERS, Router, Routing
from moe.routers.straight_through import dense_routing


@ROUTERS.register("softmax")
class SoftmaxRouter(Router):
    """Dense softmax gate (Jacobs, Jordan, Nowlan & Hinton 1991, 'Adaptive mixtures of local experts').

    p(x) = softmax(g(x) / T), g the gate network (linear x W_g + b_g by default, or an mlp); every expert
    sees every sample; output = sum_e p_e(x) q_e(y | x). ``routing: hard | gumbel``: one expert per sample,
    trained straight-through (``moe.routers.straight_through``).
    """

    routing_modes = ("soft", "hard", "gumbel")

    def forward(self, x: Tensor, expert_hidden: Tensor | None = None) -> Routing:
        logits = self.gate_logits(x)
        # soft: k = E, weights = softmax; the logits passed check_finite (removed experts' are -inf)
        return dense_routing(logits, self.routing_mode, self.temperature, self.training, finite=self.removed is None)

"""``prototype``: an interpretable nearest-prototype router."""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from moe.routers.base import ROUTERS, Router, Routing, check_finite
from moe.routers.straight_through import dense_routing


@ROUTERS.register("prototype")
class PrototypeRouter(Router):
    """Prototype router: p_e(x) = softmax_e(-||x - mu_e||^2 / T) with learnable prototypes mu_e [E, D]; dense.

    Its decision argmax_e p_e(x) is the nearest-prototype rule, readable by plotting mu_e (a soft
    k-means / RBF gate, cf. the localised gates of Xu, Jordan & Hinton 1995). Before training the
    prototypes are set to E distinct random training samples (``init_from_data``); until then N(0, 1).
    ``routing: hard | gumbel``: the nearest prototype alone (``moe.routers.straight_through``).
    """

    uses_gate_network = False
    routing_modes = ("soft", "hard", "gumbel")

    def __init__(self, cfg, input_shape: tuple[int, ...], n_experts: int):
        nn.Module.__init__(self)
        self.n_experts, self.temperature, self.routing_mode = n_experts, cfg.temperature, cfg.routing
        self.prototypes = nn.Parameter(torch.randn(n_experts, math.prod(input_shape)))  # mu [E, D]

    def forward(self, x: Tensor, expert_hidden: Tensor | None = None) -> Routing:
        x = x.flatten(1)
        # ||x - mu||^2 = |x|^2 - 2 x.mu + |mu|^2, the one matmul form of torch.cdist
        d2 = (x * x).sum(1, keepdim=True) - 2 * x @ self.prototypes.T + (self.prototypes ** 2).sum(1)  # [T, E]
        logits = self.without_removed(check_finite(-d2.clamp_min(0) / self.temperature))
        return dense_routing(logits, self.routing_mode, self.temperature, self.training)

    @torch.no_grad()
    def init_from_data(self, x: Tensor, generator: torch.Generator) -> None:
        n = len(x)
        idx = torch.randperm(n, generator=generator)[: self.n_experts] if n >= self.n_experts else \
            torch.randint(n, (self.n_experts,), generator=generator)
        self.prototypes.copy_(x.flatten(1)[idx.to(x.device)])

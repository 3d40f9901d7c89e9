"""``hash``: a fixed, parameter-free assignment; the control with balanced usage and nothing learned."""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from kernels import RoutingPlan
from moe.config import LOSS_COEFFICIENTS
from moe.routers.base import ROUTERS, Router, Routing

HASH_SCALE = 4096.0  # s * HASH_SCALE wraps around [0, 1) many times across any real data cloud


@ROUTERS.register("hash")
class HashRouter(Router):
    """Hash routing (Roller et al. 2021, 'Hash layers for large sparse models'): a fixed function of the input.

    A random projection w ~ N(0, I_D) drawn once from the run's seed (a buffer, never trained) gives
    s = x . w; the hash h = frac(HASH_SCALE * s) lies in [0, 1) and is bucketed into E equal parts:
    expert e(x) = floor(E * h), weight 1. Nearby inputs land in unrelated buckets, so usage is balanced and
    routing carries no information about the class (NMI ~ 0). probs is the one-hot of e(x), logits its log.

    With experts removed (an ablation, ``moe.scoring.ablation``) a sample whose bucket's expert is removed goes to the
    next expert in hash order that is present: (e(x) + 1) mod E, then (e(x) + 2) mod E, ...
    """

    uses_gate_network = False
    learned = False

    def __init__(self, cfg, input_shape: tuple[int, ...], n_experts: int):
        nn.Module.__init__(self)  # no gate network
        self.n_experts, self.temperature = n_experts, cfg.temperature
        g = torch.Generator().manual_seed(cfg.seed)
        # device="cpu": drawn on the CPU also inside a meta-device model (the memory estimate), where torch would
        # otherwise import torch._dynamo (seconds) to draw a buffer that counts for nothing there
        self.register_buffer("projection", torch.randn(math.prod(input_shape), generator=g, dtype=torch.float64,
                                                          device="cpu"))

    def bucket(self, x: Tensor) -> Tensor:
        """[T] int64 expert of each sample (computed in float64 so that it does not depend on rounding)."""
        s = x.flatten(1).double() @ self.projection  # [T]
        h = torch.frac(s * HASH_SCALE) % 1.0  # in [0, 1), also for negative s
        return (h * self.n_experts).long().clamp_(0, self.n_experts - 1)

    def forward(self, x: Tensor, expert_hidden: Tensor | None = None) -> Routing:
        expert = self.next_present(self.bucket(x))
        tokens = torch.arange(len(x), device=x.device)
        plan = RoutingPlan.from_assignments(tokens, expert, torch.ones(len(x), device=x.device), len(x), self.n_experts)
        probs = torch.nn.functional.one_hot(expert, self.n_experts).float()
        return Routing(plan, probs.log(), probs)

    def next_present(self, expert: Tensor) -> Tensor:
        """[T] each bucket's expert, or the next present one in hash order when it is removed."""
        if self.removed is None:
            return expert
        present = ~self.removed.to(expert.device)  # [E]
        if not bool(present.any()):
            raise ValueError("hash router: every expert is removed")
        steps = torch.arange(self.n_experts, device=expert.device)
        candidates = (expert[:, None] + steps) % self.n_experts  # [T, E] in hash order from the bucket
        return candidates.gather(1, present[candidates].long().argmax(1, keepdim=True))[:, 0]

    @classmethod
    def config_problems(cls, cfg) -> list[str]:
        problems = super().config_problems(cfg)
        for name in LOSS_COEFFICIENTS:
            if getattr(cfg, name) != 0:
                problems.append(f"{name}: the hash router is fixed, a gate regulariser has nothing to train; set it to 0")
        return problems

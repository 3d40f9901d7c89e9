"""``topk``: sparse gating that sends each sample to its k highest-scoring experts, optionally noisy."""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from kernels import topk_route
from moe.routers.base import ROUTERS, Router, Routing, check_finite


NOISE_EPSILON = 1e-2  # the reference code's noise_epsilon


@ROUTERS.register("topk")
class TopKRouter(Router):
    """Noisy top-k gate (Shazeer et al. 2017, 'Outrageously large neural networks', eqs. 3-5 and 8-10).

    H = (g(x) + eps * (softplus(x W_noise + b_noise) + 0.01)) / T with eps ~ N(0, 1) while training
    (``noisy_gate``; W_noise starts at zero and 0.01 keeps the noise positive, as in the authors' code), H = g(x) / T otherwise. Each sample goes to the k experts with the
    largest H, weights G = softmax(KeepTopK(H, k)), i.e. softmax(H) renormalised over the k chosen.
    For k = 1 the weight is the raw p_e = softmax(H)_e, as in Switch (Fedus et al. 2021): a renormalised
    single weight is always 1 and the gate would get no gradient.

    With noise and k < E the router also returns the smooth load of eq. 10:
    load_e = sum_x Phi((clean_e(x) - kth_excluding(H(x), k, e)) / noise_e(x)).
    """

    def __init__(self, cfg, input_shape: tuple[int, ...], n_experts: int):
        super().__init__(cfg, input_shape, n_experts)
        self.k = cfg.top_k
        self.noise = None
        if cfg.noisy_gate:
            self.noise = nn.Linear(math.prod(input_shape), n_experts)
            nn.init.zeros_(self.noise.weight), nn.init.zeros_(self.noise.bias)

    def forward(self, x: Tensor, expert_hidden: Tensor | None = None) -> Routing:
        clean = self.gate_logits(x)  # [T, E]
        load = None
        if self.noise is not None and self.training:
            std = check_finite((F.softplus(self.noise(x.flatten(1))) + NOISE_EPSILON) / self.temperature)  # [T, E]
            logits = clean + torch.randn_like(clean) * std
            if self.k < self.n_experts:
                load = smooth_load(clean, logits, std, self.k)
        else:
            logits = clean
        plan = topk_route(logits, self.k, renormalize=self.k > 1)
        return Routing(plan, logits, logits.softmax(-1), load)


def smooth_load(clean: Tensor, noisy: Tensor, std: Tensor, k: int) -> Tensor:
    """Shazeer et al. 2017 eq. 10: P(H_e(x) still in the top k when only e's noise is redrawn), summed over x.

    kth_excluding(H, k, e) is the k-th largest of H without e: the (k+1)-th largest if e is in the top k,
    else the k-th largest. clean, noisy, std: [T, E] (all already divided by T); returns [E].
    """
    top = noisy.topk(k + 1, dim=1).values  # [T, k + 1]
    threshold_in, threshold_out = top[:, k:k + 1], top[:, k - 1:k]
    inside = noisy > threshold_in
    threshold = torch.where(inside, threshold_in, threshold_out)
    normal = torch.distributions.Normal(0.0, 1.0)
    return normal.cdf((clean - threshold) / std).sum(0)

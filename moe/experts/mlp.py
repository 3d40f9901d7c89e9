"""``mlp`` experts: f_e(x) = relu(x W1_e + b1_e) W2_e + b2_e, hidden width ``expert_hidden``."""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from kernels import grouped_mm
from moe.experts.base import EXPERTS, ExpertBank


@EXPERTS.register("mlp")
class MLPExperts(ExpertBank):
    """E one-hidden-layer perceptrons: logits_e(x) = relu(x W1_e + b1_e) W2_e + b2_e.

    W1_e: [D, H], W2_e: [H, C]. The hidden activation relu(x W1_e + b1_e) is the expert's hidden
    state (used by the attentive gate of Krishnamurthy & Watkins, AAAI 2022).
    """

    def __init__(self, cfg, input_shape: tuple[int, ...], n_classes: int):
        hidden = cfg.expert_hidden
        super().__init__([nn.Sequential(nn.Linear(math.prod(input_shape), hidden), nn.ReLU(), nn.Linear(hidden, n_classes))
                          for _ in range(cfg.experts)])
        self.hidden_size = hidden

    @classmethod
    def hidden_width(cls, cfg) -> int:
        return cfg.expert_hidden

    def weights(self):
        """W1 [E, D, H], b1 [E, H], W2 [E, H, C], b2 [E, C] (transposed views of the stacked nn.Linear weights)."""
        w1 = self.stacked(lambda m: m[0].weight).transpose(1, 2)
        w2 = self.stacked(lambda m: m[2].weight).transpose(1, 2)
        return w1, self.stacked(lambda m: m[0].bias), w2, self.stacked(lambda m: m[2].bias)

    def routed_logits(self, x: Tensor, plan) -> Tensor:
        w1, b1, w2, b2 = self.weights()
        h = torch.relu(grouped_mm(x.flatten(1), w1, plan.offsets, gather_index=plan.row_tokens, bias=b1))
        return grouped_mm(h, w2, plan.offsets, bias=b2)  # [A, C]

    def hidden_all(self, x: Tensor) -> Tensor:
        """Every expert's hidden state for every sample: [T, E, H]."""
        w1, b1, _, _ = self.weights()
        return torch.relu(torch.einsum("td,edh->teh", x.flatten(1), w1) + b1)

    def all_logits(self, x: Tensor) -> Tensor:
        _, _, w2, b2 = self.weights()
        return torch.einsum("teh,ehc->tec", self.hidden_all(x), w2) + b2  # [T, E, C]

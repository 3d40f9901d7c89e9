"""``linear`` experts: f_e(x) = x W_e + b_e, the interpretable expert of mixtures of interpretable experts."""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from kernels import dense_applies, dense_expert_mm, grouped_mm
from moe.experts.base import EXPERTS, ExpertBank


@EXPERTS.register("linear")
class LinearExperts(ExpertBank):
    """E linear classifiers (multinomial logistic regression): logits_e(x) = x W_e + b_e, W_e: [D, C].

    Source: the linear experts of Jacobs et al. 1991 and of the seed paper's gm6 model
    (Krishnamurthy & Watkins 2021: expert = Linear(2, 6) + softmax).
    """

    def __init__(self, cfg, input_shape: tuple[int, ...], n_classes: int):
        super().__init__([nn.Linear(math.prod(input_shape), n_classes) for _ in range(cfg.experts)])

    def weights(self) -> tuple[Tensor, Tensor]:
        """W: [E, D, C] (a transposed view of the stacked nn.Linear weights), b: [E, C]."""
        return self.stacked(lambda m: m.weight).transpose(1, 2), self.stacked(lambda m: m.bias)

    def routed_logits(self, x: Tensor, plan) -> Tensor:
        x = x.flatten(1)
        if dense_applies(x, plan):  # every sample to every expert: no gather, one product for all experts (kernels.dense)
            linears = self.experts._modules.values()  # the nn.Linear of each expert, in order
            return dense_expert_mm(x, [m.weight for m in linears], [m.bias for m in linears])
        w, b = self.weights()
        return grouped_mm(x, w, plan.offsets, gather_index=plan.row_tokens, bias=b)  # [A, C]

    def all_logits(self, x: Tensor) -> Tensor:
        w, b = self.weights()
        return torch.einsum("td,edc->tec", x.flatten(1), w) + b  # [T, E, C]

"""``implicit`` experts: E linear experts whose weights one shared generator network makes from E learned codes."""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from kernels import grouped_mm
from moe import regimes
from moe.experts.base import EXPERTS, ExpertBank


class WeightGenerator(nn.Module):
    """G(z) = relu(z A + a) B + c, read as [W (D x C); b (1 x C)]; codes z_e [E, Z] (learned, N(0, 1) at start).

    B and c are drawn so that the generated W_e starts at about the scale of nn.Linear's weights (std of order
    1 / sqrt(D)); c (the shared 'mean expert') starts at 0."""

    def __init__(self, n_experts: int, code_width: int, hidden: int, n_in: int, n_classes: int):
        super().__init__()
        self.n_in, self.n_classes = n_in, n_classes
        self.codes = nn.Parameter(torch.randn(n_experts, code_width))  # z [E, Z]
        self.hidden = nn.Linear(code_width, hidden)  # A, a
        self.out = nn.Linear(hidden, (n_in + 1) * n_classes)  # B, c
        with torch.no_grad():
            self.out.weight.normal_(0.0, 1.0 / math.sqrt(hidden * n_in))
            self.out.bias.zero_()

    def forward(self, codes: Tensor) -> tuple[Tensor, Tensor]:
        """codes [U, Z] -> W [U, D, C], b [U, C]."""
        flat = self.out(torch.relu(self.hidden(codes)))  # [U, (D + 1) C]
        wb = flat.view(len(codes), self.n_in + 1, self.n_classes)
        return wb[:, :self.n_in], wb[:, self.n_in]


@EXPERTS.register("implicit")
class ImplicitLinearExperts(ExpertBank):
    """E linear experts logits_e(x) = x W_e + b_e whose weights are generated: W_e, b_e = G(z_e), with one shared
    generator G (:class:`WeightGenerator`: one hidden layer of width H = ``expert_hidden``) and a learned code
    z_e of width Z = ``code_width`` per expert.

    Each expert is still a linear classifier that can be read (its generated W_e, b_e); the parameters are
    E Z + (Z + 1) H + (H + 1)(D + 1) C instead of E (D + 1) C, so E can reach 4,096 (MAX_EXPERTS) and beyond:
    one more expert costs Z parameters, not (D + 1) C. The routed experts run through the routing plan and
    ``grouped_mm`` on the generated weights; when fewer experts are routed in a batch than exist, only theirs
    are generated (generation costs H (D + 1) C per expert, so this is never dearer).

    This design is this project's reading of the 'implicit parameterization' in the abstract of Elazar &
    Taylor 2022 ('Implicit Mixture of Interpretable Experts', arXiv 2212.00471; Elazar's 2025 thesis abstract:
    'neural networks implicitly generate the mixture'): neither their code nor their paper's body was available.
    The bank is one module (one optimizer group, one learning rate): per-expert learning rates and the regimes
    that pre-train each expert alone do not apply (``moe.validate`` says so).
    """

    def __init__(self, cfg, input_shape: tuple[int, ...], n_classes: int):
        n_in = math.prod(input_shape)
        super().__init__([WeightGenerator(cfg.experts, cfg.code_width, cfg.expert_hidden, n_in, n_classes)])
        self._n_experts = cfg.experts

    @property
    def n_experts(self) -> int:
        return self._n_experts

    @property
    def generator(self) -> WeightGenerator:
        return self.experts[0]

    def weights(self, experts: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """W [U, D, C], b [U, C] of the experts ``experts`` (int64 [U]; None: all E)."""
        codes = self.generator.codes if experts is None else self.generator.codes.index_select(0, experts)
        return self.generator(codes)

    def routed_logits(self, x: Tensor, plan) -> Tensor:
        x = x.flatten(1)
        counts = plan.counts
        used = torch.nonzero(counts > 0).flatten()  # [U]
        if len(used) < self.n_experts:  # only the routed experts' weights are generated; their rows keep their order
            w, b = self.weights(used)
            offsets = torch.cat([counts.new_zeros(1), torch.cumsum(counts[used], 0)])
        else:
            (w, b), offsets = self.weights(), plan.offsets
        return grouped_mm(x, w, offsets, gather_index=plan.row_tokens, bias=b.contiguous())  # [A, C]

    def all_logits(self, x: Tensor) -> Tensor:
        w, b = self.weights()
        return torch.einsum("td,edc->tec", x.flatten(1), w) + b  # [T, E, C]

    @classmethod
    def estimated_parameters(cls, cfg, input_shape: tuple[int, ...], n_classes: int) -> int:
        """Floats of the bank, known before building: its parameters E Z + (Z + 1) H + (H + 1)(D + 1) C and the
        E (D + 1) C weights it generates for the dense evaluation (``moe.model.memory_estimate``)."""
        z, h, d, c, e = cfg.code_width, cfg.expert_hidden, math.prod(input_shape), n_classes, cfg.experts
        return e * z + (z + 1) * h + (h + 1) * (d + 1) * c + e * (d + 1) * c

    @classmethod
    def config_problems(cls, cfg) -> list[str]:
        """One generator, one optimizer group: one learning rate; no expert can be pre-trained alone."""
        problems = []
        if cfg.expert_lrs is not None or cfg.lr_ratio != 1:
            problems.append("expert_lrs: implicit experts share one generator and train with one learning rate (lr); "
                            f"set expert_lrs to null and lr_ratio to 1, got expert_lrs {cfg.expert_lrs!r}, lr_ratio {cfg.lr_ratio:g}")
        if cfg.regime in regimes.REGIMES and any(phase.pretrain for phase in regimes.phases(cfg)):
            problems.append(f"regime: implicit experts share one generator, so no expert can be pre-trained alone; regime "
                            f"{cfg.regime!r} pre-trains; valid choices for them: joint, frozen_gate")
        return problems

    def readable_parameters(self) -> int:
        """Parameters one reads to understand one expert: its generated W_e and b_e, (D + 1) C."""
        return (self.generator.n_in + 1) * self.generator.n_classes

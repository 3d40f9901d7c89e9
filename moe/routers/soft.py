"""``soft``: Soft MoE's slot gate, adapted to one sample at a time."""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from kernels import topk_route
from moe.routers.base import ROUTERS, Router, Routing, check_finite, gate_features, gate_input, raise_gate_input_problems


@ROUTERS.register("soft")
class SoftRouter(Router):
    """Soft MoE (Puigcerver, Riquelme, Mustafa & Houlsby 2023, 'From sparse to soft mixtures of experts',
    arXiv 2308.00951, sec. 2), adapted to per-sample classification.

    Soft MoE gives each of the E experts p slots (``soft_slots``) with parameters Phi [d, E p]. For the tokens
    X [m, d] of one sequence, logits L = X Phi; dispatch weights D = softmax of L over the m tokens (each
    slot's input is a convex combination of the tokens), combine weights C = softmax of L over the E p slots
    (each token's output is a convex combination of the slots' outputs): Y = C f(D^T X). Both X and Phi are
    l2-normalised over d, X times a learned scale (their sec. 2.3), so that the logits do not grow with d.

    Our adaptation: a sample is its own sequence of one token (m = 1). Mixing tokens across the samples of a
    batch would make one sample's prediction depend on the others and feed the experts blends of inputs,
    which the routing plan (experts see the samples themselves) excludes. With m = 1 the dispatch softmax
    over the tokens is identically 1: every slot sees the sample x itself, so the p slots of expert e give
    f_e(x) each, and the combine step is what remains:

        l_s(x) = scale * <h(x) / |h(x)|, Phi_s / |Phi_s|>,   w_e(x) = sum_{s in slots(e)} softmax_s(l(x) / T)
               = softmax_e(logsumexp_{s in slots(e)} l_s(x) / T),

    a dense gate whose logit for expert e is the log-sum-exp of its p slot logits (with p = 1, a cosine-
    similarity softmax gate). h(x) is the gate network's hidden state (``gate_features``: x for
    ``gate: linear``), d its width. The logits are per expert, so removing an expert (``moe.scoring.ablation``)
    removes all its slots.
    """

    def __init__(self, cfg, input_shape: tuple[int, ...], n_experts: int):
        nn.Module.__init__(self)
        self.n_experts, self.temperature, self.gate_kind = n_experts, cfg.temperature, cfg.gate
        self.slots = cfg.soft_slots
        raise_gate_input_problems(self.gate_kind, input_shape, cfg.dataset)
        self.gate, width = gate_features(self.gate_kind, input_shape, cfg.gate_hidden)  # h [T, d]
        self.phi = nn.Parameter(torch.randn(width, n_experts * self.slots) / width ** 0.5)  # Phi [d, E p]
        self.scale = nn.Parameter(torch.ones(()))  # the learned scale of the normalised inputs

    def slot_logits(self, x: Tensor) -> Tensor:
        """[T, E, p] l_s(x): the scaled cosine similarity of h(x) and each slot's parameters."""
        h = F.normalize(self.gate(gate_input(self.gate_kind, x)), dim=-1)  # [T, d]
        return (self.scale * h @ F.normalize(self.phi, dim=0)).view(len(x), self.n_experts, self.slots)

    def forward(self, x: Tensor, expert_hidden: Tensor | None = None) -> Routing:
        logits = torch.logsumexp(self.slot_logits(x), -1) / self.temperature  # [T, E]
        logits = self.without_removed(check_finite(logits))
        plan = topk_route(logits, self.n_experts, renormalize=False)  # dense: weights = softmax
        return Routing(plan, logits, logits.softmax(-1))

"""``attention``: the attentive gate, whose queries come from the gate and keys from the experts."""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from moe.experts.base import EXPERTS
from moe.routers.base import ROUTERS, Router, Routing, check_finite, gate_features, gate_input, raise_gate_input_problems
from moe.routers.straight_through import dense_routing


@ROUTERS.register("attention")
class AttentionRouter(Router):
    """Attentive gate (Krishnamurthy, Watkins & Gaertner, AAAI 2022, 'Improving expert specialization in
    mixture of experts'): p = softmax(Q K^T / sqrt(d) / T), dense, no value projection.

    Q = h_g W_q [T, d] from the gate's hidden state h_g, K_e = h_e W_k [T, E, d] from expert e's hidden
    state h_e [T, E, H] (so the experts must have one: mlp or cnn), d = H. The gate's hidden state h_g is
    that of ``moe.routers.gate_features``: h_g = x for ``gate: linear`` (Q linear in the input),
    h_g = relu(x W_1 + b_1) of width gate_hidden for ``gate: mlp`` (the paper's setting, where the gate is a
    network like the experts), and for ``gate: cnn`` (image datasets) the cnn gate's globally
    average-pooled convolutional features, width gate_hidden (a convolutional gate beside cnn experts).
    ``routing: hard | gumbel``: one expert per sample (``moe.routers.straight_through``).
    """

    needs_expert_hidden = True
    routing_modes = ("soft", "hard", "gumbel")

    def __init__(self, cfg, input_shape: tuple[int, ...], n_experts: int):
        nn.Module.__init__(self)
        self.n_experts, self.temperature, self.gate_kind = n_experts, cfg.temperature, cfg.gate
        self.routing_mode = cfg.routing
        raise_gate_input_problems(self.gate_kind, input_shape, cfg.dataset)
        self.gate, n_in = gate_features(self.gate_kind, input_shape, cfg.gate_hidden)  # h_g [T, n_in]
        d = EXPERTS.get(cfg.expert, "expert").hidden_width(cfg)
        self.query = nn.Linear(n_in, d, bias=False)  # W_q
        self.key = nn.Linear(d, d, bias=False)  # W_k
        self.scale = 1 / math.sqrt(d)

    def forward(self, x: Tensor, expert_hidden: Tensor | None = None) -> Routing:
        if expert_hidden is None:
            raise ValueError("the attention router needs the experts' hidden states [T, E, H]")
        q = self.query(self.gate(gate_input(self.gate_kind, x)))  # [T, d]
        k = self.key(expert_hidden)  # [T, E, d]
        logits = self.without_removed(check_finite(torch.einsum("td,ted->te", q, k) * self.scale / self.temperature))  # [T, E]
        return dense_routing(logits, self.routing_mode, self.temperature, self.training)  # soft: dense, weights = softmax

"""``attention``: the attentive gate, whose queries come from the gate and keys from the experts."""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from kernels import topk_route
from moe.routers import ROUTERS, Router, Routing, check_finite


@ROUTERS.register("attention")
class AttentionRouter(Router):
    """Attentive gate (Krishnamurthy, Watkins & Gaertner, AAAI 2022, 'Improving expert specialization in
    mixture of experts'): p = softmax(Q K^T / sqrt(d) / T), dense, no value projection.

    Q = h_g W_q [T, d] from the gate's hidden state h_g, K_e = h_e W_k [T, E, d] from expert e's hidden
    state h_e [T, E, H] (so the experts must have one: mlp or cnn), d = H. The gate's hidden state is
    h_g = x for ``gate: linear`` (Q linear in the input) and h_g = relu(x W_1 + b_1) of width gate_hidden
    for ``gate: mlp`` (the paper's setting, where the gate is a network like the experts).
    """

    needs_expert_hidden = True

    def __init__(self, cfg, input_shape: tuple[int, ...], n_experts: int):
        from moe.experts import EXPERTS

        nn.Module.__init__(self)
        self.n_experts, self.temperature = n_experts, cfg.temperature
        n_in, d = math.prod(input_shape), EXPERTS.get(cfg.expert, "expert").hidden_width(cfg)
        if cfg.gate == "mlp":
            self.gate = nn.Sequential(nn.Linear(n_in, cfg.gate_hidden), nn.ReLU())
            n_in = cfg.gate_hidden
        else:
            self.gate = nn.Identity()
        self.query = nn.Linear(n_in, d, bias=False)  # W_q
        self.key = nn.Linear(d, d, bias=False)  # W_k
        self.scale = 1 / math.sqrt(d)

    def forward(self, x: Tensor, expert_hidden: Tensor | None = None) -> Routing:
        if expert_hidden is None:
            raise ValueError("the attention router needs the experts' hidden states [T, E, H]")
        q = self.query(self.gate(x.flatten(1)))  # [T, d]
        k = self.key(expert_hidden)  # [T, E, d]
        logits = check_finite(torch.einsum("td,ted->te", q, k) * self.scale / self.temperature)  # [T, E]
        plan = topk_route(logits, self.n_experts, renormalize=False)  # dense: weights = softmax
        return Routing(plan, logits, logits.softmax(-1))

    @classmethod
    def config_problems(cls, cfg) -> list[str]:
        from moe.experts import EXPERTS

        if cfg.expert in EXPERTS and EXPERTS.get(cfg.expert).hidden_width(cfg) == 0:
            with_hidden = [n for n in EXPERTS.names() if EXPERTS.get(n).hidden_width(cfg) > 0]
            return [f"router: the attention router needs experts with a hidden state ({', '.join(with_hidden)}); "
                    f"expert {cfg.expert!r} has none"]
        return []

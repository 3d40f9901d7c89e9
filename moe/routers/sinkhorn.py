"""``sinkhorn``: balanced assignment of the batch's samples to the experts (S-BASE), one expert per sample."""
from __future__ import annotations

import math

import torch
from torch import Tensor

from moe.routers.base import ROUTERS, Router, Routing
from moe.routers.straight_through import one_slot_plan

SINKHORN_ITERS = 20  # alternating normalisations; the log-domain iteration is cheap ([T, E])


def sinkhorn_log(logits: Tensor, iters: int = SINKHORN_ITERS) -> Tensor:
    """log pi [T, E] of the entropic balanced transport plan between T samples (mass 1 each) and E experts
    (mass T / E each): pi = diag(u) exp(logits) diag(v), scaled by alternating column and row normalisations
    (Sinkhorn & Knopp 1967; Cuturi 2013), in log space. After the last (row) step each row sums to 1 exactly
    and each column to about T / E."""
    n_tokens, n_experts = logits.shape
    log_pi = logits.float() if logits.dtype != torch.float64 else logits
    column_mass = math.log(n_tokens / n_experts)
    for _ in range(iters):
        log_pi = log_pi - torch.logsumexp(log_pi, 0, keepdim=True) + column_mass  # columns sum to T / E
        log_pi = log_pi - torch.logsumexp(log_pi, 1, keepdim=True)  # rows sum to 1
    return log_pi


@ROUTERS.register("sinkhorn")
class SinkhornRouter(Router):
    """Balanced routing by Sinkhorn (S-BASE: Clark et al. 2022, 'Unified scaling laws for routed language
    models', sec. 2 and appendix, after the BASE layers of Lewis et al. 2021, which solve the balanced linear
    assignment exactly: each expert takes T / E samples of the batch, maximising the total router score).

    p = softmax(g(x) / T). While training, the batch's samples go to e*(x) = argmax_e pi[x, e], pi the Sinkhorn
    plan of :func:`sinkhorn_log` on the logits (rows 1, columns T / E): approximately balanced, whatever the
    gate prefers. When evaluating, e*(x) = argmax_e p_e(x) (greedy, as BASE at test time), so the routing of a
    sample does not depend on its batch. One expert per sample, weight 1 (a one-slot plan); the gate is trained
    straight-through with s = p (``moe.routers.straight_through``: its gradient moves p towards the experts with
    the lowest loss on x). BASE instead scales the expert's output by sigmoid(score) in a residual stream, which
    a classifier's mixture has not: the straight-through gradient is this project's choice.
    """

    routing_modes = ("soft",)  # always one expert per sample: the routing field does not apply

    def forward(self, x: Tensor, expert_hidden: Tensor | None = None) -> Routing:
        logits = self.gate_logits(x)
        probs = logits.softmax(-1)  # [T, E]
        if self.training:
            with torch.no_grad():
                choice = sinkhorn_log(logits.detach()).argmax(1)
        else:
            choice = logits.detach().argmax(1)
        return Routing(one_slot_plan(choice, self.n_experts), logits, probs, relaxed=probs)

"""Every token through every expert: the grouped expert matmul of a dense routing plan (k = E), on the CPU.

Letters: T tokens, E experts, K input features, N output features.

A dense plan's grouped rows are x repeated E times (expert e's rows are the tokens 0..T-1 in order), so no
row is gathered: each expert's rows are x itself. The products are those of the grouped fallback
(``kernels.grouped``: one addmm per expert forward, x^T dy and a column sum per expert backward) on the same
operand layouts, so the outputs and the gradients are bitwise the same (``tests/kernels/test_dense.py``),
with no gather, no index checks and no host sync. The weights are taken per expert, as the modules hold them
(w_e: [N, K], nn.Linear's layout), so the gradients land on them directly, with no stack / unbind.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ._common import resolve_backend

__all__ = ["dense_expert_mm", "dense_applies"]


def dense_applies(x: Tensor, plan) -> bool:
    """Whether :func:`dense_expert_mm` gives bitwise what ``grouped_mm`` would for ``plan``: a dense plan, the torch
    backend (the CPU fallback; Triton's one grouped launch is the faster path on a GPU), x needing no gradient."""
    return plan.dense and not x.requires_grad and resolve_backend(None, x.device) == "torch"


class _DenseExpertMM(torch.autograd.Function):
    """out [E * T, N]: rows e * T + t = x[t] @ w_e^T + b_e. Backward: dw_e = (x^T dy_e)^T, db_e = sum_t dy_e."""

    @staticmethod
    def forward(ctx, x, n_experts, *params):
        weights, biases = params[:n_experts], params[n_experts:]
        ctx.save_for_backward(x, *weights)
        ctx.n_experts = n_experts
        T = x.shape[0]
        out = x.new_empty(n_experts * T, weights[0].shape[0])
        for w, b, out_e in zip(weights, biases, out.split(T)):
            torch.addmm(b, x, w.t(), out=out_e)
        return out

    @staticmethod
    def backward(ctx, dy):
        x, *weights = ctx.saved_tensors
        E, T = ctx.n_experts, x.shape[0]
        needs = ctx.needs_input_grad
        dx = None
        dws, dbs = [None] * E, [None] * E
        if any(needs[2 + E:]):  # every expert's column sums in one reduction: the bits of a sum per expert
            dbs = [db if need else None for db, need in zip(dy.view(E, T, dy.shape[1]).sum(1).unbind(0), needs[2 + E:])]
        for e, dy_e in enumerate(dy.split(T)):
            if needs[2 + e]:
                dws[e] = torch.mm(x.t(), dy_e).t()
            if needs[0]:
                part = torch.mm(dy_e, weights[e])
                dx = part if dx is None else dx + part
        return (dx, None, *dws, *dbs)


def dense_expert_mm(x: Tensor, weights: list[Tensor], biases: list[Tensor]) -> Tensor:
    """x [T, K], weights E x [N, K], biases E x [N] -> [E * T, N] in the grouped order of a dense plan.

    Bitwise the grouped fallback's ``grouped_mm(x, stack(weights).transpose(1, 2), offsets, gather_index=rows,
    bias=stack(biases))`` for a dense plan when x needs no gradient (its dx sums the experts in a different
    way; use ``grouped_mm`` then). Differentiable in x, weights and biases."""
    if not weights or len(weights) != len(biases):
        raise ValueError(f"weights and biases must be one per expert, got {len(weights)} and {len(biases)}")
    if x.dim() != 2 or any(w.shape != (weights[0].shape[0], x.shape[1]) for w in weights):
        raise ValueError(f"x must be [T, K] and every weight [N, K], got x {tuple(x.shape)}, "
                         f"weights {[tuple(w.shape) for w in weights]}")
    return _DenseExpertMM.apply(x, len(weights), *weights, *biases)

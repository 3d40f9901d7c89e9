"""Every token through every expert: the grouped expert matmul of a dense routing plan (k = E), on the CPU.

Letters: T tokens, E experts, K input features, N output features.

A dense plan's grouped rows are x repeated E times (expert e's rows are the tokens 0..T-1 in order), so no row is
gathered, and the E products of the grouped fallback (``kernels.grouped``: one [T, K] x [K, N] per expert) are one
product [T, K] x [K, E * N] against the experts' weights side by side; backward, dW = dY^T x is one product too.
On the CPU one wide product beats E narrow ones, backward most (x^T dy_e, a transposed [K, T] operand per expert,
is slow in the CPU's BLAS); ``bench.speed.kernel_bench`` measures it. The values are the same
sums in another order: within float32 rounding of the grouped fallback (measured up to 1e-6 relative;
``tests/kernels/test_dense.py``), not bitwise. The weights are taken per expert, as the modules hold them
(w_e: [N, K], nn.Linear's layout), and their gradients come back in that layout, contiguous.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ._common import resolve_backend

__all__ = ["dense_expert_mm", "dense_applies"]


def dense_applies(x: Tensor, plan) -> bool:
    """Whether :func:`dense_expert_mm` serves ``plan``: a dense plan, the torch backend (the CPU fallback; Triton's one
    grouped launch is the faster path on a GPU), x needing no gradient (the experts' first layer: its input is data)."""
    return plan.dense and not x.requires_grad and resolve_backend(None, x.device) == "torch"


class _DenseExpertMM(torch.autograd.Function):
    """out [E * T, N]: rows e * T + t = x[t] @ w_e^T + b_e, from one product x @ W^T with W = cat_e w_e [E * N, K].
    Backward: dW = dY^T x in one product (dY [T, E * N], each expert's dy_e side by side), its rows split per
    expert; db_e = sum_t dy_e; dx = dY W."""

    @staticmethod
    def forward(ctx, x, n_experts, *params):
        weights, biases = params[:n_experts], params[n_experts:]
        w = torch.cat(weights)  # [E * N, K]
        ctx.save_for_backward(x, w)
        ctx.n_experts = n_experts
        T, N = x.shape[0], weights[0].shape[0]
        out = torch.addmm(torch.cat(biases), x, w.t())  # [T, E * N]
        return out.view(T, n_experts, N).transpose(0, 1).reshape(n_experts * T, N)

    @staticmethod
    def backward(ctx, dy):
        x, w = ctx.saved_tensors
        E, T, N = ctx.n_experts, x.shape[0], dy.shape[1]
        needs = ctx.needs_input_grad
        by_expert = dy.view(E, T, N)
        dy_t = by_expert.transpose(0, 1).reshape(T, E * N)  # [T, E * N]: each token's rows side by side
        dx = torch.mm(dy_t, w) if needs[0] else None
        # every weight's and bias's gradient (autograd ignores those of inputs that need none): E x [N, K], the
        # layout of nn.Linear's weight, and E x [N], one reduction for all biases
        dws = torch.mm(dy_t.t(), x).split(N) if any(needs[2:2 + E]) else (None,) * E
        dbs = by_expert.sum(1).unbind(0) if any(needs[2 + E:]) else (None,) * E
        return (dx, None, *dws, *dbs)


def dense_expert_mm(x: Tensor, weights: list[Tensor], biases: list[Tensor]) -> Tensor:
    """x [T, K], weights E x [N, K], biases E x [N] -> [E * T, N] in the grouped order of a dense plan.

    The grouped fallback's ``grouped_mm(x, stack(weights).transpose(1, 2), offsets, gather_index=rows,
    bias=stack(biases))`` for a dense plan, within float32 rounding (see the module). Differentiable in x, weights
    and biases."""
    if not weights or len(weights) != len(biases):
        raise ValueError(f"weights and biases must be one per expert, got {len(weights)} and {len(biases)}")
    if x.dim() != 2 or any(w.shape != (weights[0].shape[0], x.shape[1]) for w in weights):
        raise ValueError(f"x must be [T, K] and every weight [N, K], got x {tuple(x.shape)}, "
                         f"weights {[tuple(w.shape) for w in weights]}")
    return _DenseExpertMM.apply(x, len(weights), *weights, *biases)

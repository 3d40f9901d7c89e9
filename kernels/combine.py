"""Weighted combine: the expert-grouped rows back to their tokens, scaled by the routing weights.

Letters: T tokens, k slots per token, A grouped rows (valid slots), N feature width.
rows [T, k] is RoutingPlan.slot_rows (grouped row of each slot, -1 unused); weights [T, k].

    out[t] = sum_j weights[t, j] * y[rows[t, j]]                       (forward: a gather per token, no atomics)
    dy[r] = weights[slot(r)] * dout[token(r)]; dweights[slot(r)] = <dout[token(r)], y[r]>   (backward: per row)
"""
from __future__ import annotations

import torch
from torch import Tensor

from ._common import tl, triton

__all__ = ["combine"]


@triton.jit
def _combine_kernel(
    # pointers
    y_ptr, w_ptr, rows_ptr, out_ptr,  # y [A, N]; w fp32 [T, k]; rows int64 [T, k]; out [T, N]
    # sizes
    N, KSLOTS,
    # strides
    stride_ym, stride_yn, stride_om, stride_on,
    # meta-parameters
    BLOCK_N: tl.constexpr,
):
    """out[t, n-tile] = sum_j w[t, j] * y[rows[t, j], n-tile], fp32 accumulation, slots in order j."""
    t = tl.program_id(0).to(tl.int64)
    offs_n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    mask_n = offs_n < N
    acc = tl.zeros((BLOCK_N,), dtype=tl.float32)
    for j in range(KSLOTS):
        r = tl.load(rows_ptr + t * KSLOTS + j)
        wt = tl.load(w_ptr + t * KSLOTS + j)
        y = tl.load(y_ptr + r * stride_ym + offs_n * stride_yn, mask=mask_n & (r >= 0), other=0.0)
        acc += wt * y.to(tl.float32)
    tl.store(out_ptr + t * stride_om + offs_n * stride_on, acc.to(out_ptr.dtype.element_ty), mask=mask_n)


@triton.jit
def _combine_bwd_kernel(
    # pointers
    dout_ptr, y_ptr, w_ptr, order_ptr, dy_ptr, dw_ptr,  # dout [T, N]; y [A, N]; w, dw fp32 [T * k]; order int64 [A]; dy [A, N]
    # sizes
    N, KSLOTS,
    # strides
    stride_om, stride_on, stride_ym, stride_yn, stride_dym, stride_dyn,
    # meta-parameters
    BLOCK_N: tl.constexpr,
):
    """For grouped row r with slot s = order[r], token t = s // k: dy[r] = w[s] * dout[t], dw[s] = <dout[t], y[r]>."""
    r = tl.program_id(0).to(tl.int64)
    s = tl.load(order_ptr + r)
    t = s // KSLOTS
    wt = tl.load(w_ptr + s)
    dot = tl.zeros((BLOCK_N,), dtype=tl.float32)
    for n0 in range(0, N, BLOCK_N):
        offs_n = n0 + tl.arange(0, BLOCK_N)
        mask_n = offs_n < N
        g = tl.load(dout_ptr + t * stride_om + offs_n * stride_on, mask=mask_n, other=0.0).to(tl.float32)
        y = tl.load(y_ptr + r * stride_ym + offs_n * stride_yn, mask=mask_n, other=0.0).to(tl.float32)
        dot += g * y
        tl.store(dy_ptr + r * stride_dym + offs_n * stride_dyn, (wt * g).to(dy_ptr.dtype.element_ty), mask=mask_n)
    tl.store(dw_ptr + s, tl.sum(dot, axis=0))


COMBINE_BLOCK_N = 128


def _combine_triton(y: Tensor, weights: Tensor, rows: Tensor) -> Tensor:
    """y [A, N], weights fp32 [T, k], rows int64 [T, k] -> out [T, N] (y's dtype)."""
    T, k = rows.shape
    N = y.shape[1]
    out = torch.empty(T, N, dtype=y.dtype, device=y.device)
    if T == 0 or N == 0:
        return out
    grid = (T, triton.cdiv(N, COMBINE_BLOCK_N))
    _combine_kernel[grid](y, weights, rows, out, N, k, y.stride(0), y.stride(1), out.stride(0), out.stride(1),
                          BLOCK_N=COMBINE_BLOCK_N)
    return out


def _combine_bwd_triton(dout: Tensor, y: Tensor, weights: Tensor, order: Tensor) -> tuple[Tensor, Tensor]:
    """-> dy [A, N] (y's dtype), dweights fp32 [T, k] (0 in unused slots)."""
    A, N = y.shape
    dy = torch.empty_like(y)
    dw = torch.zeros(weights.shape, dtype=weights.dtype, device=y.device)
    if A == 0:
        return dy, dw
    _combine_bwd_kernel[(A,)](dout, y, weights, order, dy, dw, N, weights.shape[1],
                              dout.stride(0), dout.stride(1), y.stride(0), y.stride(1), dy.stride(0), dy.stride(1),
                              BLOCK_N=COMBINE_BLOCK_N)
    return dy, dw


class _Combine(torch.autograd.Function):
    """out [T, N] = sum_j weights[t, j] * y[rows[t, j]] by the Triton kernels, forward and backward."""

    @staticmethod
    def forward(ctx, y, weights, rows, order):
        w = weights.contiguous()
        ctx.save_for_backward(y, w, order)
        return _combine_triton(y, w, rows.contiguous())

    @staticmethod
    def backward(ctx, dout):
        y, w, order = ctx.saved_tensors
        dy, dw = _combine_bwd_triton(dout, y, w, order)
        return dy, dw.to(w.dtype), None, None


def combine_torch(y: Tensor, weights: Tensor, rows: Tensor) -> Tensor:
    """Reference: a gather per slot column (unused slots read an appended zero row), fp32 accumulation."""
    A = y.shape[0]
    if A < rows.numel():  # some slots unused
        y, rows = torch.cat([y, y.new_zeros(1, y.shape[1])]), rows.where(rows >= 0, A)
    acc = torch.promote_types(y.dtype, weights.dtype)
    w = weights.to(acc)
    out = y.index_select(0, rows[:, 0]).to(acc) * w[:, :1]
    for j in range(1, rows.shape[1]):
        out = out.addcmul_(y.index_select(0, rows[:, j]).to(acc), w[:, j:j + 1])
    return out.to(y.dtype)


def combine(y: Tensor, weights: Tensor, rows: Tensor, order: Tensor, backend: str) -> Tensor:
    """y [A, N] -> [T, N]; differentiable in y and weights. `backend` already resolved."""
    if backend == "triton":
        if weights.dtype != torch.float32:
            raise ValueError("weights must be float32 for backend='triton'")
        return _Combine.apply(y, weights, rows, order)
    return combine_torch(y, weights, rows)
